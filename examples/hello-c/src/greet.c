#include <stdio.h>
#include "greet.h"
#include "greetings.h"

int greeting_count(void) { return GREETING_COUNT; }

void greet(const char *who, int index) {
    printf("%s, %s!\n", greetings[index % GREETING_COUNT], who);
}
