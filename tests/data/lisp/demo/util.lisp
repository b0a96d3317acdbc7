(in-package :plait-demo)

(defun shout (s) (string-upcase s))
