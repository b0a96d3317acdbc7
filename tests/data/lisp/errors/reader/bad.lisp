(defun bad-f ()
  (list 1 2))

(defun worse ()
  (list 1 2)))
