;;;; plait's checkpoint: load what many compiles share, once, and save a core they start from.
;;;;   sbcl --core CORE --script call.lisp plait-checkpoint:main OUT LOAD...
;;;; (loaded into the definitions core by the dump).
;;;; Each LOAD is a printed list (operation-class system component-name...), performed in order
;;;; with ASDF's own perform, the fasls being under ./out/ as in a compile's sandbox.

(defpackage :plait-checkpoint (:use :cl :plait-lisp) (:export #:main))
(in-package :plait-checkpoint)

(defun main (args)
  (destructuring-bind (out &rest loads) args
    (use-sandbox-translations)
    (perform-loads loads)
    (forget-translations)
    (save-core out)))

