(in-package :plait-grovel)

(defun eintr-twice ()
  (twice +eintr+))
