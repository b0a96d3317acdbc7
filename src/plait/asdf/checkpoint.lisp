;;;; plait's checkpoint: load what many compiles share, once, and save a core they start from.
;;;;   sbcl --core CORE --script checkpoint.lisp OUT LOAD...
;;;; Each LOAD is a printed list (operation-class system component-name...), performed in order
;;;; with ASDF's own perform, the fasls being under ./out/ as in a compile's sandbox.

(defpackage :plait-checkpoint (:use :cl))
(in-package :plait-checkpoint)

(defun action-of (token)
  (destructuring-bind (op-class system &rest path)
      (let ((*read-eval* nil)) (read-from-string token))
    (let* ((colon (search "::" op-class))
           (op (find-symbol (subseq op-class (+ colon 2)) (subseq op-class 0 colon)))
           (sys (asdf:find-system system)))
      (values (asdf:make-operation op) (if path (asdf:find-component sys path) sys)))))

(defun main (args)
  (destructuring-bind (out &rest loads) args
    (asdf:initialize-output-translations
     `(:output-translations (t (,(merge-pathnames "out/" (uiop:getcwd)) :**/ :*.*.*))
                            :ignore-inherited-configuration))
    (let ((class (find-symbol "DEPENDENCY-NOT-DONE" :asdf/plan)))
      (handler-bind ((warning (lambda (w) (when (and class (typep w class)) (muffle-warning w)))))
        (dolist (token loads)
          (multiple-value-bind (o c) (action-of token)
            (asdf:perform o c)))))
    (setf asdf::*output-translations-parameter* nil)
    (asdf:clear-output-translations)
    (sb-ext:save-lisp-and-die out :executable nil)))

(main (rest sb-ext:*posix-argv*))
