;;;; What plait's Lisp drivers share (compile, checkpoint, run). Each loads this file first; it
;;;; needs upgrade.lisp's plait-upgrade, which the dump loads before it.

(defpackage :plait-lisp
  (:use :cl)
  (:export #:action-of #:bookkeeping-p #:translate-outputs-under #:use-sandbox-translations
           #:forget-translations #:perform-loads #:perform-or-exit #:as-in-a-plan #:*when-warm*
           #:call #:save-core))
(in-package :plait-lisp)

(defvar *when-warm* '()
  "Functions a warm server calls when its loads are done, before it forks any worker.")

(defun call (entry args)
  "Call the function ENTRY names (a printed PACKAGE:FUNCTION) on the list ARGS."
  ;; --script makes the runtime die on a control stack overflow. In the image ASDF runs in it
  ;; is a STORAGE-CONDITION, which the code, and the compile driver, may handle.
  (plait-sbcl:set-runtime-int "lose_on_corruption_p" 0)
  (funcall (let ((*read-eval* nil)) (read-from-string entry)) args))

(defun action-of (token)
  "The operation and component a printed list (operation-class system component-name...) names."
  (destructuring-bind (op-class system &rest path)
      (let ((*read-eval* nil)) (read-from-string token))
    (let* ((colon (search "::" op-class))
           (op (find-symbol (subseq op-class (+ colon 2)) (subseq op-class 0 colon)))
           (sys (asdf:find-system system)))
      (values (asdf:make-operation op) (if path (asdf:find-component sys path) sys)))))

(defun bookkeeping-p (w)
  "ASDF's complaint that plait, not ASDF's plan, performed an action's dependencies."
  (let ((class (find-symbol "DEPENDENCY-NOT-DONE" :asdf/plan)))
    (and class (typep w class))))

(defun translate-outputs-under (root)
  "Every output goes under ROOT, at its source's absolute path."
  (asdf:initialize-output-translations
   `(:output-translations (t (,root :**/ :*.*.*)) :ignore-inherited-configuration)))

(defun use-sandbox-translations ()
  "Every output goes under ./out/, where the sandbox also holds the dependencies' fasls."
  (translate-outputs-under (merge-pathnames "out/" (uiop:getcwd))))

(defun forget-translations ()
  "Before saving a core: an image started from it computes the user's translations afresh."
  (setf asdf::*output-translations-parameter* nil)
  (asdf:clear-output-translations))

(defmacro as-in-a-plan (&body body)
  "BODY as ASDF's plan performs an action: in an ASDF session that has ASDF upgraded already,
and has found each system this image defines. A file that calls REQUIRE when compiled or loaded
makes ASDF operate; out of such a session, ASDF would first upgrade itself, and compile its
newer self anew, as its fasl is not in the sandbox: seconds, in every compile."
  `(call-as-in-a-plan (lambda () ,@body)))

(defun call-as-in-a-plan (thunk)
  (if asdf::*asdf-session*  ; one is made once: a compile performs its loads in its own
      (funcall thunk)
      (plait-upgrade:upgraded-session
        (found-as-defined)
        (funcall thunk))))

(defun found-as-defined ()
  "Record in this session that each registered system is found as this image has it. Its
definition is the one the dump loaded, and plait keeps that current: the .asd files are in
every action's key. Left to check, ASDF would look for the fasls of what a definition needs
(its defsystem-depends-on), which a sandbox need not hold, find them missing, and load the .asd
again, compiling all those systems anew in the sandbox."
  (dolist (name (asdf:registered-systems))
    (asdf::set-asdf-cache-entry `(asdf:find-system ,name) (list (asdf:registered-system name)))))

(defun perform-loads (tokens)
  "Perform each action TOKENS name, in order, with ASDF's own perform; exit 4 when one fails."
  (as-in-a-plan
    (dolist (token tokens)
      (multiple-value-bind (o c) (action-of token)
        (perform-or-exit o c 4 "plait-error: load: loading ~a failed: ~a"
                         (asdf:component-find-path c))))))

(defun perform-or-exit (o c code control what)
  "Perform O on C with ASDF's own perform. When that fails, say so on one line, CONTROL's two
arguments being WHAT and the condition, and exit CODE."
  (handler-bind ((warning (lambda (w) (when (bookkeeping-p w) (muffle-warning w))))
                 (serious-condition
                   (lambda (e)
                     (format *error-output* "~&~?~%" control
                             (list what (let ((*print-pretty* nil)) (princ-to-string e))))
                     (finish-output *error-output*)
                     (sb-ext:exit :code code :abort t))))
    (asdf:perform o c)))

(defun save-core (file)
  "Save this image as the core FILE and exit. Not statically linked: SBCL would first rewrite
every call between functions of its immobile space into a direct one (a large share of the
save's time), an optimization for an application's image. The compiles forked before the
save ran without it, and a compile's output does not depend on it."
  (let ((link (find-symbol "STATICALLY-LINK-CORE" "SB-VM")))
    (when (and link (fboundp link))
      (sb-ext:without-package-locks
        (setf (fdefinition link) (lambda (&rest args) (declare (ignore args)) nil)))))
  (sb-ext:save-lisp-and-die file :executable nil))

