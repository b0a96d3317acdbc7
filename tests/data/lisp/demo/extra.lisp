(in-package :plait-demo)

(defun extra () :extra)
