#ifndef GREET_H
#define GREET_H
void greet(const char *who, int index);
int greeting_count(void);
#endif
