(defun plait-conn-f () 42)
