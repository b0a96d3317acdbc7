#include "greet.h"

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "world";
    for (int i = 0; i < greeting_count(); i++)
        greet(who, i);
    return 0;
}
