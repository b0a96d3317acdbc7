(in-package :lint-macro)

;; Compiled without macros.lisp loaded, this is a call of an undefined function, which loading
;; the fasl makes (and fails).
(defconstant-once +answer+ (+ 40 2))
