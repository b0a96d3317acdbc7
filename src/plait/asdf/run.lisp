;;;; plait's test runner, run by a fresh SBCL on the definitions core:
;;;;   sbcl --core CORE --script call.lisp plait-run:main ACTION...
;;;; (loaded into the definitions core by the dump).
;;;; Performs each ACTION (a printed list: operation-class system component-name...) in order, with
;;;; ASDF's own perform and the user's output translations (the fasls plait built are there).
;;;; ASDF's test-op ignores what a framework returns, so the verdicts of known frameworks are
;;;; watched: a failed verdict or an error exits 1; all well, exit 0.

(defpackage :plait-run (:use :cl :plait-lisp) (:export #:main))
(in-package :plait-run)

(defvar *failures* '())
(defvar *depth* 0)

;;; (package function framework): the function returns false when tests failed.
(defparameter *verdicts*
  '(("SB-RT" "DO-TESTS" "sb-rt")
    ("REGRESSION-TEST" "DO-TESTS" "rt")
    ("IT.BESE.FIVEAM" "RUN!" "fiveam")
    ("CL-PPCRE-TEST" "RUN-ALL-TESTS" "cl-ppcre-test")))

(defun watch-verdicts ()
  (dolist (entry *verdicts*)
    (destructuring-bind (package name framework) entry
      (let ((symbol (and (find-package package) (find-symbol name package))))
        (when symbol
          (plait-sbcl:wrap-function symbol 'plait-verdict
            (lambda (f &rest args)
              ;; Only the outermost call is a verdict: a framework's own tests run it inside.
              (let ((result (let ((*depth* (1+ *depth*))) (apply f args))))
                (when (and (zerop *depth*) (not result))
                  (push framework *failures*))
                result))))))))

(defun watch-loads ()
  "Watch the verdicts of frameworks that load during the run, too: a test-op's perform may load
the system that holds the suite and perform its test-op itself."
  (plait-sbcl:wrap-function 'asdf:perform 'plait-watch-loads
    (lambda (f o c)
      (multiple-value-prog1 (funcall f o c)
        (when (typep o 'asdf:load-op) (watch-verdicts))))))

(defun main (tokens)
  (watch-loads)
  (handler-bind ((warning (lambda (w) (when (bookkeeping-p w) (muffle-warning w))))
                 (error (lambda (e)
                          (format t "~&~%plait: the tests signalled an error: ~a~%" e)
                          (fresh-line)
                          (finish-output)
                          (sb-ext:exit :code 1 :abort t))))
    (dolist (token tokens)
      (multiple-value-bind (o c) (action-of token)
        (when (typep o 'asdf:test-op) (watch-verdicts))
        (asdf:perform o c))))
  (fresh-line)
  (finish-output)
  (when *failures*
    (format t "~&~%plait: ~a reported failures~%" (first *failures*))
    (finish-output)
    (sb-ext:exit :code 1 :abort t)))

