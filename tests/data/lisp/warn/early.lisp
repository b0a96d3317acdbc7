(in-package :plait-warn)

;; DEFINED-LATER is defined by late.lisp: not a real problem. NEVER-DEFINED is.
(defun early () (list (defined-later) (never-defined)))
