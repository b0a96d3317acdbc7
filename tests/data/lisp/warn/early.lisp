(in-package :plait-warn)

;; DEFINED-LATER is defined by late.lisp: not a real problem. NEVER-DEFINED is.
;; DEFINED-AT-COMPILE-TIME is defined by late.lisp too, already while it compiles.
(defun early () (list (defined-later) (never-defined) (defined-at-compile-time)))

;; *DEFINED-LATER* is late.lisp's: not a problem either. *NEVER-DEFINED* is.
(defun early-variables () (list *defined-later* *never-defined*))
