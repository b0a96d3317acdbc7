(defun plait-conn-extra () :connected)
