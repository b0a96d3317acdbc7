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
;;;; Every plait Lisp process loads this file first, so it also holds the few runtime tunings
;;;; they share (RUNTIME-VARIABLE, KEEP-FREED-PAGES).

(require :asdf)
(defpackage :plait-upgrade
  (:use :cl)
  (:export #:upgraded-session #:newer-asdf #:runtime-variable #:keep-freed-pages #:main))
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

(defun runtime-variable (name)
  "The address (a SAP) of the SBCL runtime's C variable NAME, or NIL on an SBCL without it: a
tuning plait makes there is then not made."
  (let ((address (sb-sys:find-foreign-symbol-address name)))
    (and address (sb-sys:int-sap address))))

(defun keep-freed-pages ()
  "Keep the pages this process's collections free mapped, for it to allocate in again. SBCL
gives them back to the kernel after each collection of generation 2 or older, and a compile
allocating there next faults each one in afresh, zero-filled: in a process that lives for one
compile that costs system time and saves nothing (kalyna's compile faulted 277k times, 145k
with them kept; ASDF's compile of itself 142k, 64k)."
  (let ((limit (runtime-variable "small_generation_limit")))  ; a C generation_index_t
    (when limit
      (setf (sb-sys:signed-sap-ref-8 limit 0) sb-vm:+pseudo-static-generation+))))

(defun main ()
  (keep-freed-pages)
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
        (handler-bind ((style-warning #'muffle-warning))
          (asdf:perform (asdf:make-operation 'asdf:compile-op) file))))))
