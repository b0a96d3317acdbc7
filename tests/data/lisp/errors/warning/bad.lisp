;; a comment
(defun f (x)
  (+ x "a"))
