;;;; A warm server for tests: plait's serve.lisp on plain SBCL, with workers' entries to call.
;;;;   sbcl --script server.lisp IN OUT

(require :asdf)
(let ((lisp (merge-pathnames "../../../src/plait/asdf/" *load-truename*)))
  (load (merge-pathnames "common.lisp" lisp))
  (load (merge-pathnames "serve.lisp" lisp)))

(defpackage :plait-test (:use :cl))
(in-package :plait-test)

(defun report (args)
  "Write the directory it runs in and ARGS, one per line, to report.txt; say so on stdout."
  (with-open-file (s "report.txt" :direction :output :if-exists :supersede)
    (format s "~a~%~{~a~%~}" (uiop:getcwd) args))
  (format t "reported ~d~%" (length args)))

(defun fail (args)
  (sb-ext:exit :code (parse-integer (first args)) :abort t))

(defun hang (args)
  (declare (ignore args))
  (sleep 600))

(plait-serve:main (last sb-ext:*posix-argv* 2))
