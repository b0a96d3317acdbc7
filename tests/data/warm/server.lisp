;;;; A warm server for tests: plait's serve.lisp on plain SBCL, with workers' entries to call.
;;;;   sbcl --script server.lisp IN OUT

(require :asdf)
(let ((lisp (merge-pathnames "../../../src/plait/asdf/" *load-truename*)))
  (dolist (driver '("json" "upgrade" "common" "compile" "serve"))  ; in the dump's order
    (load (merge-pathnames (concatenate 'string driver ".lisp") lisp))))
(asdf:load-asd (merge-pathnames "warm-demo.asd" *load-truename*))

(defpackage :plait-test (:use :cl))
(in-package :plait-test)

(defun report (args)
  "Write the directory it runs in and ARGS, one per line, to report.txt; say so on stdout."
  (with-open-file (s "report.txt" :direction :output :if-exists :supersede)
    (format s "~a~%~{~a~%~}" (uiop:getcwd) args))
  (format t "reported ~d~%" (length args)))

(defun pid (args)
  "Write this process's pid to pid.txt."
  (declare (ignore args))
  (with-open-file (s "pid.txt" :direction :output :if-exists :supersede)
    (format s "~d~%" (sb-unix:unix-getpid))))

(defun threads (args)
  "Write how many threads the runtime knows of to threads.txt, after a full GC (which stops
them all: one that is gone in a forked worker would be fatal)."
  (declare (ignore args))
  (sb-ext:gc :full t)
  (with-open-file (s "threads.txt" :direction :output :if-exists :supersede)
    (format s "~d~%" (length (sb-thread:avltree-list sb-thread::*all-threads*)))))

(defun young (args)
  "Write to young.txt how many bytes the generations a worker's collections copy (1 to 4) hold
as it starts."
  (declare (ignore args))
  (let ((bytes (loop :for g :from 1 :to 4 :sum (sb-ext:generation-bytes-allocated g))))
    (with-open-file (s "young.txt" :direction :output :if-exists :supersede)
      (format s "~d~%" bytes))))

(defun gc-settings ()
  "The nursery's size, the bytes generation 1 takes before it is collected, and the oldest
generation whose collection leaves the pages it frees mapped (SBCL's small_generation_limit)."
  (list (sb-ext:bytes-consed-between-gcs) (sb-ext:generation-bytes-consed-between-gcs 1)
        (sb-sys:signed-sap-ref-8 (plait-sbcl:runtime-variable "small_generation_limit") 0)))

(defun nursery (args)
  "Write to nursery.txt this worker's GC-SETTINGS, then the same once the compile driver's MAIN
has set up the worker (given no arguments, it then fails on them, which is caught here)."
  (declare (ignore args))
  (let ((before (gc-settings)))
    (handler-case (plait-compile:main '())
      (error () nil))
    (with-open-file (s "nursery.txt" :direction :output :if-exists :supersede)
      (format s "~{~d~^ ~}~%" (append before (gc-settings))))))

(defun crowded (args)
  "Write to crowded.txt how many bytes may survive into generation 1 before it is collected,
once the compile driver's MAIN has set up the worker, then after the heap has filled up so far
that a collection leaves less than 400 MB free."
  (declare (ignore args))
  (handler-case (plait-compile:main '())
    (error () nil))
  (let ((set-up (sb-ext:generation-bytes-consed-between-gcs 1))
        (kept '()))
    (loop :while (> (plait-upgrade:heap-room) (* 350 1024 1024))
          :do (push (make-array (* 16 1024 1024) :element-type '(unsigned-byte 8)) kept))
    (sb-ext:gc)
    (with-open-file (s "crowded.txt" :direction :output :if-exists :supersede)
      (format s "~d ~d ~d~%" set-up (sb-ext:generation-bytes-consed-between-gcs 1) (length kept)))))

(defun defined-when-ready (args)
  "Write to defined.txt whether the compile driver's count of defined functions, taken when the
server was ready, has each function ARGS names."
  (with-open-file (s "defined.txt" :direction :output :if-exists :supersede)
    (dolist (name args)
      (format s "~a ~a~%" name (and plait-compile::*defined-when-warm*
                                    (gethash (let ((*read-eval* nil)) (read-from-string name))
                                             plait-compile::*defined-when-warm*)
                                    t)))))

(defpackage :plait-test-exporter (:use :cl) (:export #:shared))
(defpackage :plait-test-importer (:use :cl) (:import-from :plait-test-exporter #:shared))

(defun defined-since (args)
  "Define a function, a setf function and a function named by a symbol two packages hold, then
write to defined.txt what the compile driver says was defined since before."
  (declare (ignore args))
  (let ((before (plait-compile::defined-symbols)))
    (setf (fdefinition 'fresh-function) (lambda () 1))
    (setf (fdefinition '(setf fresh-function)) (lambda (value) value))
    (setf (fdefinition 'plait-test-exporter:shared) (lambda () 2))
    (with-open-file (s "defined.txt" :direction :output :if-exists :supersede)
      (format s "~{~a~%~}" (plait-compile::defined-since before)))))

(defun staged (args)
  "With ARGS a file and the loads left to perform: perform them, then write to staged.txt
whether the file is in the sandbox and whether the load of warm-demo's a.lisp happened."
  (destructuring-bind (file &rest loads) args
    (plait-lisp:use-sandbox-translations)
    (plait-lisp:perform-loads loads)
    (with-open-file (s "staged.txt" :direction :output :if-exists :supersede)
      (format s "~a ~a~%" (and (probe-file file) t)
              (and (boundp 'cl-user::*a-loaded*) (symbol-value 'cl-user::*a-loaded*))))))

(defun peek (args)
  "Write to seen.txt, for each file in ARGS, whether this process can see it."
  (with-open-file (s "seen.txt" :direction :output :if-exists :supersede)
    (dolist (file args)
      (format s "~a ~a~%" file (if (probe-file file) "seen" "hidden")))))

(defun fail (args)
  (sb-ext:exit :code (parse-integer (first args)) :abort t))

(defun hang (args)
  (declare (ignore args))
  (sleep 600))

(plait-serve:main (last sb-ext:*posix-argv* 2))
