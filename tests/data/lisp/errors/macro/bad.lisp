(defmacro m () (error "macro boom"))

(defun g ()
    (list 1
      (m)))
