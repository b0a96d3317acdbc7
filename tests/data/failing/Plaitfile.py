# 'bad' fails; 'after-bad' needs it; 'good' and 'good-too' do not.

action("bad", ["sh", "-c", "echo compiling; echo 'bad.c:3: error: oops' >&2; exit 3"],
       inputs=["bad.c"], outputs=["bad.o"])
action("after-bad", ["cp", "bad.o", "prog"], inputs=["bad.o"], outputs=["prog"])
action("good", ["cp", "good.c", "good.o"], inputs=["good.c"], outputs=["good.o"])
action("good-too", ["cp", "good.o", "good2.o"], inputs=["good.o"], outputs=["good2.o"])
