# 'quick' finishes at once; 'slow' records its pid in $PIDDIR and sleeps unless $PIDDIR/fast exists.
import os

piddir = os.environ.get("PIDDIR", "/nonexistent")
action("quick", ["cp", "in.txt", "quick.txt"], inputs=["in.txt"], outputs=["quick.txt"])
action("slow", ["sh", "-c", f"echo $$ > {piddir}/slow.pid;"
                f" [ -e {piddir}/fast ] || sleep 60; cp in.txt slow.txt"],
       inputs=["in.txt"], outputs=["slow.txt"])
