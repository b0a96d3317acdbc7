(in-package :plait-broken)

(defun bad () (no-such-package::thing))
