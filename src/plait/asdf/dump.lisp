;;;; plait's ASDF dumper: load ASDF and the definitions of the target systems, write the action
;;;; graph ASDF computes for them as JSON, then save a core with those definitions loaded.
;;;; Usage: sbcl --script dump.lisp OUT.json CORE SERVE SANDBOX-ROOT PROJECT-DIR OPERATION:SYSTEM...
;;;; Once OUT.json is written, says "plait-graph: written" on stdout, then saves CORE. SERVE is
;;;; "-", or a printed list of the arguments of plait-serve:detach: a warm server for the core is
;;;; then forked first, so that plait need not wait for the save, which then waits until plait
;;;; closes the dump's standard input.
;;;; Exit 0 on success; on a problem, exit 3 with one line "plait-error: <kind>: <message>".

(require :asdf)
(load (merge-pathnames "json.lisp" *load-truename*))
(defpackage :plait-dump (:use :cl :plait-json))
(in-package :plait-dump)

(defun fail (kind fmt &rest args)
  "Exit 3, saying what went wrong on one line (SBCL's pretty printer breaks long messages)."
  (format *error-output* "~&plait-error: ~a: ~{~a~^ ~}~%" kind
          (mapcar (lambda (line) (string-trim " " line))
                  (uiop:split-string (format nil "~?" fmt args) :separator '(#\Newline))))
  (finish-output *error-output*)
  (sb-ext:exit :code 3 :abort t))

(defun arr (list) (array-of list))

(defun safe-files (fn o c)
  (handler-case (mapcar #'namestring (remove nil (funcall fn o c)))
    (error () nil)))

;;; ASDF's upgrade of itself (upgrade.lisp) would compile the newer ASDF first: 4-5 s before
;;; anything else could happen. The dump loads its source instead (the same code: ASDF supports
;;; being loaded so, in a third of the time), and first says on stdout where it is and where the
;;; user's images look for its fasl, so that plait compiles it on SBCL's own core meanwhile.
;;; Where that fasl is up to date already (after any build that compiled it), the dump loads
;;; it, as ASDF's upgrade would, which is much quicker than loading the source.
;;; *UPGRADE* is then that (:obj ...) description, else NIL.

(load (merge-pathnames "upgrade.lisp" *load-truename*))
(use-package :plait-upgrade)

(defvar *upgrade* nil)

(defun upgrade-asdf ()
  (upgraded-session
    (let* ((system (ignore-errors (asdf:find-system "asdf" nil)))
           (file (newer-asdf system)))
      (when file
        (setf *upgrade*
              (list :obj
                    :asd (namestring (truename (asdf:system-source-file system)))
                    :source (namestring (truename (asdf:component-pathname file)))
                    :path (asdf:component-find-path file)
                    :outputs (arr (safe-files #'asdf:output-files
                                              (asdf:make-operation 'asdf:compile-op) file))
                    :version (asdf:component-version system)))
        (format t "~&plait-upgrade: ")
        (write-json *upgrade* *standard-output*)
        (terpri)
        (finish-output)
        (let* ((source (asdf:component-pathname file))
               (fasl (find-if (lambda (f) (string= (pathname-type f) "fasl"))
                              (getf (rest *upgrade*) :outputs)))
               (date (max (file-write-date source)
                          (file-write-date (asdf:system-source-file system))))
               (compiled (and fasl (probe-file fasl) (>= (file-write-date fasl) date))))
          (handler-bind ((warning #'muffle-warning)
                         (error (lambda (e)
                                  (fail "internal" "loading ASDF ~a from ~a failed: ~a"
                                        (asdf:component-version system) source e))))
            (load (if (and compiled (fasl-loadable-p fasl)) fasl source))))))))

(defun fasl-loadable-p (fasl)
  "Whether FASL is one this SBCL loads: its header checked, nothing of it loaded."
  (with-open-file (s fasl :element-type '(unsigned-byte 8))
    (plait-sbcl:fasl-header-ok-p s)))

(upgrade-asdf)

;; The ASDF loaded above is the newest there is, as after ASDF's own upgrade; but ASDF does not
;; know it loaded it, and an operation in a session of its own (a .asd that loads a system while
;; it is being loaded: cl-containers.asd loads asdf-system-connections) would load it again,
;; which resets its packages and drops what other systems added to them. An immutable system
;; is never loaded again. Its .asd still counts among those the graph depends on (SYSTEM-ASDS).
(when *upgrade*
  (asdf:register-immutable-system "asdf"))

;; The drivers that later run on the saved core are loaded (and so compiled) here, once.
(dolist (driver '("common" "compile" "checkpoint" "run" "serve"))
  (load (merge-pathnames (concatenate 'string driver ".lisp") *load-truename*)))
(use-package :plait-lisp)

;;; The walk.

(defvar *ids* (make-hash-table :test 'equal))
(defvar *nodes* '())
(defvar *counter* 0)

(defun class-name-string (object)
  (let ((name (class-name (class-of object))))
    (format nil "~a::~a" (package-name (symbol-package name)) (symbol-name name))))

(defun component-key (c)
  (list (asdf:component-name (asdf:component-system c))
        (asdf:component-find-path c)))

(defun system-kind (system)
  (cond ((typep system 'asdf::require-system) "require")
        ;; With their secondary systems: "asdf/defsystem" concatenates ASDF's sources into the
        ;; asdf.lisp that the upgrade compiles, in ASDF's own directory.
        ((member (asdf:primary-system-name system) '("asdf" "uiop" "asdf-package-system")
                 :test #'string=)
         "preloaded")
        ((and asdf::*immutable-systems*
              (gethash (asdf:component-name system) asdf::*immutable-systems*))
         "immutable")
        (t "source")))

(defun asdf-own-p (specializer)
  "Whether SPECIALIZER is a class of ASDF's, UIOP's or Common Lisp's own."
  (and (typep specializer 'class)
       (let* ((package (symbol-package (class-name specializer)))
              (name (and package (package-name package))))
         ;; ASDF's packages are ASDF/..., UIOP's UIOP/...; but ASDF/USER (ASDF-USER) is where
         ;; .asd files are read, and its classes are the systems' own.
         (and (not (equal name "ASDF/USER"))
              (or (null name)
                  (member name '("COMMON-LISP" "ASDF" "UIOP") :test #'string=)
                  (uiop:string-prefix-p "ASDF/" name)
                  (uiop:string-prefix-p "UIOP/" name))))))

(defun user-method-p (function o c)
  "Whether a method of FUNCTION other than ASDF's own applies to (O C)."
  (some (lambda (m) (notevery #'asdf-own-p (sb-mop:method-specializers m)))
        (compute-applicable-methods function (list o c))))

(defun user-perform-p (o c)
  "Whether (O C) has a PERFORM of its own: a test-op with none runs no tests, whatever ASDF's
TEST-SYSTEM returns."
  (user-method-p #'asdf:perform o c))

(defun done-already-p (o c)
  "Whether the system says, through an OPERATION-DONE-P of its own, that (O C) is done: ASDF
then never performs it (uffi-tests' C library, when Debian installed it)."
  (and (user-method-p #'asdf:operation-done-p o c)
       (ignore-errors (asdf:operation-done-p o c))
       t))

(defun add-node (o c deps &key (kind (system-kind (asdf:component-system c))))
  "Number the action (O C), whose dependencies have the ids DEPS, and record it as a node."
  (let ((id (incf *counter*))
        (system (asdf:component-system c)))
    (setf (gethash (list (type-of o) (component-key c)) *ids*) id)
    (push (list :obj
                :id id
                :operation (string-downcase (symbol-name (type-of o)))
                :op_class (class-name-string o)
                :system (asdf:component-name system)
                :system_kind kind
                :path (arr (rest (asdf:component-find-path c)))
                :class (class-name-string c)
                :is_system (if (typep c 'asdf:system) t :false)
                :entry_point (and (typep c 'asdf:system)
                                  (asdf::component-entry-point c))
                :is_source (if (typep c 'asdf:source-file) t :false)
                :in_image (if (asdf::needed-in-image-p o c) t :false)
                :runs_tests (if (and (typep o 'asdf:test-op) (user-perform-p o c)) t :false)
                :done_already (if (done-already-p o c) t :false)
                :inputs (arr (safe-files #'asdf:input-files o c))
                :outputs (arr (safe-files #'asdf:output-files o c))
                :deps (arr deps))
          *nodes*)
    id))

(defun visit (o c)
  "Post-order: an action's id is given after all its dependencies have theirs (ASDF's plan order)."
  (let ((key (list (type-of o) (component-key c))))
    (multiple-value-bind (id found) (gethash key *ids*)
      (when found
        (when (eq id :visiting)
          (fail "cycle" "dependency cycle through ~a on ~a"
                (type-of o) (asdf:component-find-path c)))
        (return-from visit id)))
    (setf (gethash key *ids*) :visiting)
    (let ((deps '()))
      (asdf::map-direct-dependencies o c (lambda (do dc) (push (visit do dc) deps)))
      (add-node o c (reverse deps)))))

(defun system-asds ()
  "Each registered system whose definition is in a file, with that file: ((name asd) ...)."
  (let ((pairs '()))
    (dolist (name (asdf:registered-systems))
      (let* ((s (asdf:registered-system name))
             (f (and s (asdf:system-source-file s))))
        (when (and f (probe-file f))
          (push (list name (namestring (truename f))) pairs))))
    (when (and *upgrade* (not (assoc "asdf" pairs :test #'string=)))
      (push (list "asdf" (getf (rest *upgrade*) :asd)) pairs))
    (sort pairs #'string< :key #'first)))

(defun operation-named (name)
  (cond ((string-equal name "load") 'asdf:load-op)
        ((string-equal name "test") 'asdf:test-op)
        ((string-equal name "compile") 'asdf:compile-op)
        (t (fail "usage" "unknown operation ~a" name))))

(defun looked ()
  "The directories ASDF searched for .asd files."
  (let ((dirs '()))
    (ignore-errors
     (dolist (entry (asdf::flatten-source-registry))
       (push (namestring (first entry)) dirs)))
    (dolist (d asdf:*central-registry*) (push (princ-to-string d) dirs))
    (format nil "~{~a~^, ~}" (reverse dirs))))

(defun missing-dependency (e)
  "A system a system depends on is nowhere ASDF looks."
  (let ((by (asdf::missing-required-by e)))
    (format *error-output* "~&plait-looked: ~a~%" (looked))
    (fail "missing-system" "ASDF cannot find system '~a'~@[ (version ~a)~], which '~a' depends on"
          (asdf:coerce-name (asdf::missing-requires e))
          (and (typep e 'asdf::missing-component-of-version) (asdf::missing-version e))
          (if (typep by 'asdf:component) (asdf:component-name by) by))))

(defun walk (targets)
  "Find each target's system and number every action its operation needs; return the roots,
as (operation system) lists."
  (let ((roots '()))
    (dolist (target targets)
      (let* ((colon (position #\: target))
             (op (operation-named (subseq target 0 colon)))
             (name (subseq target (1+ colon)))
             (system (handler-case (asdf:find-system name nil)
                       (error (e)
                         (fail "definition" "loading the definition of ~a failed: ~a" name e)))))
        (unless system
          (format *error-output* "~&plait-looked: ~a~%" (looked))
          (fail "missing-system" "ASDF cannot find system '~a'" name))
        (push (list op system) roots)))
    (setf roots (nreverse roots))
    (dolist (r roots) (visit (asdf:make-operation (first r)) (second r)))
    (visit-connections)
    roots))

(defvar *connections* '()
  "The system connections the walk visited: ((load-op-id required-system...) ...).")

(defun visit-connections ()
  "Visit the load-op of each system connection (asdf-system-connections) whose required systems
the walk loads: ASDF loads it as soon as they are loaded, so a build of them builds it too."
  (let ((class (find-symbol "SYSTEM-CONNECTION" :asdf))
        (required (find-symbol "SYSTEMS-REQUIRED" :asdf)))
    (when (and class (find-class class nil) required (fboundp required))
      (loop
        (let ((loaded '()) (more nil))
          (maphash (lambda (key id)
                     (declare (ignore id))
                     (destructuring-bind (op-type (sys path)) key
                       (when (and (eq op-type 'asdf:load-op) (null (rest path)))
                         (push sys loaded))))
                   *ids*)
          (dolist (name (asdf:registered-systems))
            (let ((s (asdf:registered-system name)))
              (when (and (typep s class) (not (member name loaded :test #'string=)))
                (let ((needs (mapcar #'asdf:coerce-name (funcall required s))))
                  (when (subsetp needs loaded :test #'string=)
                    (push (list* (visit (asdf:make-operation 'asdf:load-op) s) needs)
                          *connections*)
                    (setf more t))))))
          (unless more (return)))))))

(defun sandbox-outputs ()
  "Each action's output files as ASDF's translations have them now: ((id file...) ...). Called in a
session, where ASDF finds each system once: out of one, FIND-SYSTEM checks a system's definition
dependencies anew each time, which for a system with a defsystem-depends-on costs a noticeable
fraction of a second per node."
  (let ((pairs '()))
    (maphash (lambda (key id)
               (destructuring-bind (op-type (sys path)) key
                 (let ((c (asdf:find-component (asdf:find-system sys) (rest path))))
                   (push (cons id (arr (safe-files #'asdf:output-files
                                                   (asdf:make-operation op-type) c)))
                         pairs))))
             *ids*)
    pairs))

(defun main (args)
  "Write the graph; return the core to save and how to serve it (NIL: no server)."
  (destructuring-bind (out core serve sandbox-root project &rest targets) args
    (asdf:initialize-source-registry
     `(:source-registry (:directory ,(uiop:ensure-directory-pathname project))
                        :inherit-configuration))
    ;; An output that ASDF's translations do not reach is where *DEFAULT-PATHNAME-DEFAULTS*
    ;; puts it, the directory ASDF runs in (cffi-tests links its test libraries there): for the
    ;; user, the project; in a compile, its sandbox.
    (let ((roots (let ((*default-pathname-defaults* (uiop:ensure-directory-pathname project)))
                   (upgraded-session (walk targets)))))
      ;; Outputs once more under the sandbox's translation, where a compile writes them, in a
      ;; session of their own: a session remembers the output files it computed.
      (translate-outputs-under sandbox-root)
      (let ((nodes (reverse *nodes*))
            (sandbox-nodes (let ((*default-pathname-defaults*
                                   (uiop:pathname-parent-directory-pathname
                                    (uiop:ensure-directory-pathname sandbox-root))))
                             (asdf::with-asdf-session () (sandbox-outputs)))))
        (with-open-file (s out :direction :output :if-exists :supersede
                               :external-format :utf-8)
          (write-json (list :obj
                      :schema 1
                      :asdf_version (asdf:asdf-version)
                      :lisp_version (lisp-implementation-version)
                      :asdf_upgrade *upgrade*
                      :features (arr (mapcar (lambda (f) (string-downcase (symbol-name f)))
                                             *features*))
                      :system_asds (arr (system-asds))
                      :roots (arr (mapcar (lambda (r)
                                            (gethash (list (first r)
                                                           (component-key (second r)))
                                                     *ids*))
                                          roots))
                      :connections (arr (mapcar (lambda (c)
                                                  (list :obj :root (first c)
                                                        :requires (arr (rest c))))
                                                (reverse *connections*)))
                      :nodes (arr (mapcar (lambda (n)
                                            (let ((id (getf (rest n) :id)))
                                              (append n (list :sandbox_outputs
                                                              (cdr (assoc id sandbox-nodes))))))
                                          nodes)))
                s))))
    ;; Forget the sandbox's translation: an image started from the core computes the user's
    ;; translations afresh, from its own environment.
    (forget-translations)
    (values core (unless (string= serve "-")
                   (let ((*read-eval* nil)) (read-from-string serve))))))

(multiple-value-bind (core serve)
    (handler-bind ((warning #'muffle-warning)
                   (asdf::missing-dependency #'missing-dependency)
                   (error (lambda (e) (fail "internal" "~a" e))))
      (main (rest sb-ext:*posix-argv*)))
  ;; Out here, the server forked runs under none of the handlers above.
  (when (and serve (string/= core "-"))
    (apply #'plait-serve:detach serve))
  (format t "~&plait-graph: written~%")
  (finish-output)
  ;; With a server forked, compiles need no core yet: the save waits until plait closes this
  ;; process's standard input, when a core would otherwise idle (or something needs the core).
  (when serve
    (loop :while (read-line *standard-input* nil)))
  (when (string/= core "-")
    (format *error-output* "~&plait-dump: saving the core~%")
    (finish-output *error-output*)
    (save-core core)))
