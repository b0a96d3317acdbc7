int bad
