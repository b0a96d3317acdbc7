;;;; plait's products, run by a plain SBCL in a sandbox:
;;;;   sbcl --script product.lisp bundle OUT REQUIRE... -- FASL...
;;;;   sbcl --script product.lisp program OUT ENTRY REQUIRE... -- FASL...
;;;; A bundle is a prelude fasl that requires the modules the system needs, then every fasl in
;;;; plan order: one file that loads in a fresh SBCL. A program loads the same and dumps an
;;;; executable whose toplevel calls ENTRY and exits with its result (0 unless an integer).

(load (merge-pathnames "sbcl.lisp" *load-truename*))
(defpackage :plait-product (:use :cl))
(in-package :plait-product)

(defun entry-hint ()
  (format *error-output* "hint: --entry (or the system's :entry-point) names a function the ~
                          system defines, as PACKAGE::FUNCTION~%")
  (sb-ext:exit :code 2 :abort t))

(defun split-args (args)
  (let ((at (position "--" args :test #'string=)))
    (values (subseq args 0 at) (subseq args (1+ at)))))

(defun prelude (requires)
  "A fasl that requires each module; its recorded source name and date are fixed."
  (let ((source (merge-pathnames "plait-prelude.lisp" (truename "./")))
        (fasl (merge-pathnames "plait-prelude.fasl" (truename "./"))))
    (with-open-file (s source :direction :output :if-exists :supersede)
      (with-standard-io-syntax
        (dolist (r requires) (print `(require ,r) s))))
    (plait-sbcl:with-source-namestring ("plait-prelude.lisp")
      (plait-sbcl:wrap-function 'file-write-date 'plait-fixed-date
        (lambda (f file) (if (search "plait-prelude" (namestring file)) 0 (funcall f file))))
      (compile-file source :output-file fasl :verbose nil :print nil))
    fasl))

(defun concatenate-files (out files)
  (with-open-file (o out :direction :output :element-type '(unsigned-byte 8)
                         :if-exists :supersede)
    (let ((buffer (make-array 65536 :element-type '(unsigned-byte 8))))
      (dolist (f files)
        (with-open-file (i f :element-type '(unsigned-byte 8))
          (loop :for n = (read-sequence buffer i) :while (plusp n)
                :do (write-sequence buffer o :end n)))))))

(defun main (args)
  (destructuring-bind (kind out &rest more) args
    (cond
      ((string= kind "bundle")
       (multiple-value-bind (requires fasls) (split-args more)
         (concatenate-files out (cons (prelude requires) fasls))))
      ((string= kind "program")
       (multiple-value-bind (head fasls) (split-args more)
         (destructuring-bind (entry &rest requires) head
           (dolist (r requires) (require r))
           (dolist (f fasls) (load f))
           (let ((function (handler-case (let ((*read-eval* nil)) (read-from-string entry))
                             (error (e)
                               (let ((why (princ-to-string e)))
                                 (format *error-output* "~&plait: the entry point ~a names no ~
                                                         function: ~a~%"
                                         entry (subseq why 0 (position #\Newline why))))
                               (entry-hint)))))
             (unless (and (symbolp function) (fboundp function))
               (format *error-output* "~&plait: the entry point ~a is not a function~%" entry)
               (entry-hint))
             (sb-ext:save-lisp-and-die
              out :executable t
              :toplevel (lambda ()
                          (let ((result (funcall function)))
                            (sb-ext:exit :code (if (integerp result) result 0)))))))))
      (t (error "unknown product ~a" kind)))))

(main (rest sb-ext:*posix-argv*))
