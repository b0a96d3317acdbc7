"""Write a C header holding one string per line of the data file."""

import sys

data, out = sys.argv[1], sys.argv[2]
with open(data, encoding="utf-8") as f:
    lines = [line.strip() for line in f if line.strip()]
with open(out, "w", encoding="utf-8") as f:
    f.write("/* generated from %s: do not edit */\n" % data)
    f.write("#define GREETING_COUNT %d\n" % len(lines))
    f.write("static const char *const greetings[] = {\n")
    for line in lines:
        f.write('    "%s",\n' % line.replace("\\", "\\\\").replace('"', '\\"'))
    f.write("};\n")
