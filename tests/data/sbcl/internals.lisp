;;;; Calls each function of plait's sbcl.lisp and prints "NAME VALUE" lines for
;;;; tests/test_sbcl_internals.py:  sbcl --script internals.lisp SBCL.LISP SCRATCH-DIRECTORY

(require :asdf)
(destructuring-bind (internals scratch) (last sb-ext:*posix-argv* 2)
  (load internals)
  (defparameter cl-user::*scratch* (uiop:ensure-directory-pathname scratch)))

(defpackage :internals-test (:use :cl :plait-sbcl))
(in-package :internals-test)

(defun say (name value)
  (format t "~(~a~) ~s~%" name value)
  (finish-output))

(defun scratch (name)
  (namestring (merge-pathnames name cl-user::*scratch*)))

(defun in-child (function)
  "Run FUNCTION in a forked child, which exits with what it returns: the status WAIT-FOR says."
  (stop-finalizer)
  (let ((pid (fork-process)))
    (if (zerop pid)
        (sb-ext:exit :code (funcall function) :abort t)
        (wait-for pid))))

;;; Processes.
(say 'fork-and-wait (in-child (lambda () 7)))
(say 'new-session (in-child (lambda () (if (= (new-session) (getpid)) 0 1))))
(say 'getpid (= (getpid) (parse-integer (car (last (pathname-directory
                                                     (truename "/proc/self/")))))))
(say 'kill-process
     (progn (stop-finalizer)
            (let ((pid (fork-process)))
              (when (zerop pid) (sleep 60) (sb-ext:exit :abort t))
              (kill-process pid)
              (wait-for pid))))
(say 'change-directory (list (change-directory "/") (change-directory "/no/such/directory")))
(say 'open-redirect-write-close
     (let ((fd (open-fd (scratch "written.txt") (o-wronly-create-truncate))))
       (in-child (lambda ()
                   (redirect-fd fd 1)
                   (write-fd 1 (sb-ext:string-to-octets (format nil "via dup2~%")))
                   0))
       (close-fd fd)
       (uiop:read-file-string (scratch "written.txt"))))
(say 'open-fd-missing (open-fd "/no/such/file" (o-rdonly)))
(say 'pipe-and-streams
     (multiple-value-bind (in out) (make-pipe)
       (let ((writer (fd-output-stream out)))
         (list (= (stream-fd writer) out)
               (progn (write-line "through the pipe" writer) (close writer)
                      (with-open-stream (reader (fd-input-stream in)) (read-line reader)))))))
(say 'close-on-exec
     (let ((fd (open-fd "/dev/null" (o-rdonly))))
       (prog1 (list (close-on-exec fd) (close-on-exec 12345)) (close-fd fd))))
(say 'environment
     (in-child (lambda ()
                 (clear-environment)
                 (set-environment-variable "ONLY" "this")
                 (if (equal (sb-ext:posix-environ) '("ONLY=this")) 0 1))))
(say 'join-namespace-of-a-plain-file (join-namespace (open-fd "/dev/null" (o-rdonly))))
(say 'namespace-parent-and-identity
     (let* ((mine (open-fd "/proc/self/ns/user" (o-rdonly)))
            (again (open-fd "/proc/self/ns/user" (o-rdonly)))
            (parent (namespace-parent mine)))
       (prog1 (list (equal (file-identity mine) (file-identity again))
                    ;; The initial user namespace has no parent; a nested one has.
                    (or (null parent) (not (equal (file-identity parent) (file-identity mine))))
                    (namespace-parent (open-fd "/dev/null" (o-rdonly))))
         (close-fd mine) (close-fd again))))

;;; Threads.
(say 'other-threads-after-stop (progn (stop-finalizer) (other-threads-p)))
(say 'start-finalizer (progn (start-finalizer) t))

;;; The runtime and the heap.
(say 'runtime-variable (list (and (runtime-variable "lose_on_corruption_p") t)
                             (runtime-variable "no_such_plait_variable")))
(say 'set-runtime-int (list (set-runtime-int "lose_on_corruption_p" 0)
                            (set-runtime-int "no_such_plait_variable" 0)))
(say 'set-runtime-word (set-runtime-word "auto_gc_trigger"
                                         (+ (dynamic-usage) (* 256 1024 1024))))
(say 'keep-freed-pages-mapped (keep-freed-pages-mapped))
(say 'dynamic-usage (let ((bytes (dynamic-usage)))
                      (and (integerp bytes) (< 0 bytes (sb-ext:dynamic-space-size)))))
(say 'cpu-seconds-and-faults (multiple-value-bind (seconds faults) (cpu-seconds-and-faults)
                               (list (and (realp seconds) (> seconds 0))
                                     (and (integerp faults) (> faults 0)))))

;;; The compiler.
(defun write-source (name text)
  (with-open-file (s (scratch name) :direction :output :if-exists :supersede)
    (write-string text s))
  (scratch name))

(say 'error-context
     (let ((file (write-source "bad.lisp" (format nil "(defun f ()~%  (let ((x 1 2)) x))~%")))
           (seen nil))
       (handler-bind ((compiler-error
                        (lambda (e)
                          (declare (ignore e))
                          (push (list (error-source-position)
                                      (pathname-name (error-source-file)))
                                seen))))
         (compile-file file :output-file (scratch "bad.fasl") :verbose nil :print nil))
       (list (error-source-position) (reverse seen))))
(say 'reader-error
     (let ((file (write-source "unread.lisp" (format nil "(defun g ()~%  (list 1 2~%")))
           (seen nil))
       ;; SBCL signals a COMPILER-ERROR wrapping the compile's input error, which wraps the
       ;; reader's.
       (handler-bind ((compiler-error
                        (lambda (e)
                          (let ((input (unwrap-condition e)))
                            (when (and (null seen) (reader-error-in-compile-p input))
                              (setf seen
                                    (list (not (reader-error-in-compile-p e))
                                          (typep (unwrap-condition input) 'end-of-file)
                                          (let ((stream (stream-error-stream input)))
                                            (line-and-column stream
                                                             (file-position stream))))))))))
         (ignore-errors
          (compile-file file :output-file (scratch "unread.fasl") :verbose nil :print nil)))
       seen))
(say 'undefined-names
     (let ((file (write-source "undefined.lisp"
                               (format nil "(defun h () (plait-no-such-function *plait-no-such-variable*))~%"))))
       (with-compilation-unit (:override t)
         (handler-bind ((warning #'muffle-warning))
           (compile-file file :output-file (scratch "undefined.fasl") :verbose nil :print nil))
         (prog1 (list (undefined-names :function) (undefined-names :variable)
                      (progn (forget-undefined-warnings) (undefined-names :function)))))))
(say 'variable-defined-p
     (progn (defvar *plait-defined* 1)
            (define-symbol-macro plait-symbol-macro 2)
            (list (variable-defined-p '*plait-defined*) (variable-defined-p 'pi)
                  (variable-defined-p 'plait-symbol-macro)
                  (variable-defined-p '*plait-not-a-variable*))))
(say 'type-defined-p
     (progn (defstruct plait-point x)
            (deftype plait-small () '(integer 0 9))
            (list (and (type-defined-p 'plait-point) t) (and (type-defined-p 'plait-small) t)
                  (and (type-defined-p 'integer) t) (type-defined-p 'plait-not-a-type))))
(say 'forget-interned-pathnames
     ;; Parsed at run time, after the clearing: a literal would be read before it.
     (flet ((made () (pathname-directory (pathname "/plait/interned/x"))))
       (let ((before (made)))
         (forget-interned-pathnames)
         (list (equal before (made)) (eq (second before) (second (made)))))))
(say 'with-source-namestring
     (let ((file (write-source "named.lisp" (format nil "(defun k () 1)~%"))))
       (with-source-namestring ("shown/as/this.lisp")
         (compile-file file :output-file (scratch "named.fasl") :verbose nil :print nil))
       (and (search "shown/as/this.lisp"
                    (uiop:read-file-string (scratch "named.fasl")
                                           :external-format :latin-1))
            t)))
(defun wrapped-one (x) (* x 10))
(say 'wrap-function
     (list (wrap-function 'wrapped-one 'plait-test (lambda (f x) (1+ (funcall f x))))
           (wrap-function 'wrapped-one 'plait-test (lambda (f x) (funcall f x)))
           (wrapped-one 4)
           (wrap-function 'plait-not-a-function 'plait-test #'identity)))

;;; Fasls.
(say 'fasl-header-ok-p
     (list (with-open-file (s (scratch "named.fasl") :element-type '(unsigned-byte 8))
             (fasl-header-ok-p s))
           (with-open-file (s (scratch "named.lisp") :element-type '(unsigned-byte 8))
             (fasl-header-ok-p s))))
