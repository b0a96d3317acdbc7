# A small text pipeline of primitive actions: words -> upper, count -> report; other is apart.

action("words", ["sh", "-c", "tr ' ' '\\n' < text.txt > build/words.txt"],
       inputs=["text.txt"], outputs=["build/words.txt"])
action("upper", ["sh", "-c", "tr a-z A-Z < build/words.txt > build/upper.txt"],
       inputs=["build/words.txt"], outputs=["build/upper.txt"])
action("count", ["sh", "-c", "wc -l < build/words.txt > build/count.txt"],
       inputs=["build/words.txt"], outputs=["build/count.txt"])
action("report", ["sh", "-c", "cat build/count.txt build/upper.txt > build/report.txt"],
       inputs=["build/count.txt", "build/upper.txt"], outputs=["build/report.txt"])
action("other", ["cp", "other.txt", "build/other.txt"],
       inputs=["other.txt"], outputs=["build/other.txt"])
