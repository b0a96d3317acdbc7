(in-package :plait-requiring)

(defun twice-rotated (x)
  (rotated (rotated x)))
