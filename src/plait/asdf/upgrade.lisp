;;;; ASDF's upgrade of itself. Before it operates on anything, ASDF upgrades itself to a newer
;;;; version its source registry holds (Debian's cl-asdf is newer than the ASDF SBCL bundles):
;;;; the running ASDF compiles the newer one's single source file, unless the user's cache has
;;;; its fasl already, and loads it.
;;;;
;;;; The dump loads this file to find that newer ASDF. plait compiles it as an action of its own,
;;;; on SBCL's own core, while the dump runs, which is what ASDF's own upgrade would do:
;;;;   sbcl --noinform --non-interactive --no-sysinit --no-userinit --load upgrade.lisp
;;;;        --eval '(plait-upgrade:main)' ASD SOURCE
;;;; The fasl goes under ./out/ (the directories of SOURCE below it). Style-warnings are muffled,
;;;; as ASDF's upgrade muffles them. Exit: 0 compiled; 1 it did not.
;;;;
;;;; Every plait Lisp process but a product's loads this file first (and it loads sbcl.lisp), so
;;;; it also holds the few runtime tunings they share (HEAP-ROOM, and TUNE-FOR-ONE-COMPILE for
;;;; the processes that live for one compile: this file's MAIN and the compile driver's
;;;; workers).

(require :asdf)
(unless (find-package :plait-sbcl)
  (load (merge-pathnames "sbcl.lisp" *load-truename*)))
(defpackage :plait-upgrade
  (:use :cl)
  (:export #:upgraded-session #:newer-asdf #:heap-room
           #:tune-for-one-compile #:main))
(in-package :plait-upgrade)

(defmacro upgraded-session (&body body)
  "BODY in an ASDF session that counts ASDF as upgraded already."
  `(asdf::with-asdf-session ()
     (setf (asdf::asdf-upgraded-p (asdf::toplevel-asdf-session)) t)
     ,@body))

(defun source-files (component)
  "COMPONENT's source files, depth first in definition order."
  (if (typep component 'asdf:parent-component)
      (mapcan #'source-files (asdf:component-children component))
      (and (typep component 'asdf:cl-source-file) (list component))))

(defun newer-asdf (system)
  "The one source file of SYSTEM (the \"asdf\" system the source registry found) when it is a
newer ASDF than the running one; else NIL."
  (let ((files (and system (source-files system))))
    (when (and system
               (= (length files) 1)
               (probe-file (asdf:component-pathname (first files)))
               (uiop:version< (asdf:asdf-version) (asdf:component-version system)))
      (first files))))

(defun keep-freed-pages ()
  "Keep the pages this process's collections free mapped, for it to allocate in again. SBCL
gives them back to the kernel after each collection of generation 2 or older, and a compile
allocating there next faults each one in afresh, zero-filled: in a process that lives for one
compile that costs system time and saves nothing."
  (plait-sbcl:keep-freed-pages-mapped))

(defun heap-room ()
  "Bytes of the heap not in use."
  (- (sb-ext:dynamic-space-size) (plait-sbcl:dynamic-usage)))

(defun keep-survivors ()
  "Leave what survives the nursery in generation 1 until 200 MB of it has, rather than SBCL's 1%
of the heap (~10 MB), in a process that lives for one compile: much of what survives a compile's
nursery (its source forms and their paths, the IR of a large function) lives on for a while, and
each collection of generation 1 would copy it again. At most a quarter of the room left in the heap; and once a collection leaves less room than
twice that, back to SBCL's own setting, so that a compile whose survivors fill the heap collects
them as it would have."
  (let* ((sbcl (sb-ext:generation-bytes-consed-between-gcs 1))
         (survivors (max sbcl (min (* 200 1024 1024) (floor (heap-room) 4)))))
    (setf (sb-ext:generation-bytes-consed-between-gcs 1) survivors)
    (push (lambda ()
            (when (< (heap-room) (* 2 survivors))
              (setf (sb-ext:generation-bytes-consed-between-gcs 1) sbcl)))
          sb-ext:*after-gc-hooks*)))

(defun tune-for-one-compile ()
  "The collector's tunings for a process that lives for one compile."
  (keep-freed-pages)
  (keep-survivors))

(defun main ()
  (tune-for-one-compile)
  (destructuring-bind (asd source) (last sb-ext:*posix-argv* 2)
    ;; ASDF looks for itself where the dump found it, and nowhere else.
    (asdf:initialize-source-registry
     `(:source-registry (:directory ,(uiop:pathname-directory-pathname asd))
                        :ignore-inherited-configuration))
    (upgraded-session
      (let ((file (newer-asdf (asdf:find-system "asdf" nil))))
        (unless (and file (equal (truename (asdf:component-pathname file)) (truename source)))
          (format *error-output* "~&plait: ~a does not define a newer ASDF whose source is ~a~%"
                  asd source)
          (sb-ext:exit :code 1 :abort t))
        (asdf:initialize-output-translations
         `(:output-translations (t (,(merge-pathnames "out/" (uiop:getcwd)) :**/ :*.*.*))
                                :ignore-inherited-configuration))
        ;; The fasl records its source's write date as 0, as a compile's does (compile.lisp):
        ;; one source gives one fasl, wherever it is compiled and however it was touched.
        (let ((fixed (namestring (truename source))))
          (plait-sbcl:wrap-function 'file-write-date 'plait-fixed-upgrade-date
            (lambda (f file)
              (if (ignore-errors (string= (namestring (truename file)) fixed))
                  0
                  (funcall f file)))))
        (handler-bind ((style-warning #'muffle-warning))
          (asdf:perform (asdf:make-operation 'asdf:compile-op) file))))))
