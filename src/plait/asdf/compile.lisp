;;;; plait's compile driver, loaded into the definitions core by the dump and run by a fresh SBCL
;;;; on that core, in a sandbox:
;;;;   sbcl --core CORE --script call.lisp plait-compile:main WARNINGS ON-WARNINGS ON-FAILURE MODE
;;;;        TARGET [LOAD...]
;;;; TARGET and each LOAD are printed lists (operation-class system-name component-name...).
;;;; Outputs go under ./out/ (ASDF's output translations point there); dependency fasls are
;;;; already there. The compile goes through ASDF's own perform, after performing each LOAD in
;;;; order. WARNINGS receives the compile's warnings, undefined and defined functions as JSON.
;;;; Exit: 0 compiled; 1 the compile failed; 4 loading a dependency failed.

(defpackage :plait-compile (:use :cl :plait-lisp :plait-json) (:export #:main #:relocated))
(in-package :plait-compile)

(defun qualified (name)
  (let ((*package* (find-package :keyword)) (*print-readably* nil) (*print-case* :upcase))
    (prin1-to-string name)))

(defvar *sbcl-packages* (remove-if-not #'sb-ext:package-locked-p (list-all-packages))
  "The packages locked when the definitions core was made: SBCL's own (COMMON-LISP, SB-...),
most of the symbols. The walks below skip them, which makes each walk an order of magnitude
cheaper: a file of a build defines functions there only under WITHOUT-PACKAGE-LOCKS, and what such a
definition would spare is, at worst, reporting a function another file defines as undefined.")

(defmacro do-walked-symbols ((var) &body body)
  "BODY for each symbol present in a package other than SBCL's own (a symbol present in two
packages, twice)."
  (let ((package (gensym)) (next (gensym)) (more (gensym)))
    `(dolist (,package (list-all-packages))
       (unless (member ,package *sbcl-packages*)
         (with-package-iterator (,next ,package :internal :external)
           (loop (multiple-value-bind (,more ,var) (,next)
                   (unless ,more (return))
                   ,@body)))))))

(defun symbol-kind (symbol setf-name)
  "What SYMBOL names, as bits: 1 a function, 2 a setf function, 4 a variable (special, constant
or a symbol macro), 8 a type or class; 0 for none. SETF-NAME is a list (SETF x) to reuse, so
that asking conses nothing."
  (setf (second setf-name) symbol)
  (logior (if (fboundp symbol) 1 0)
          (if (fboundp setf-name) 2 0)
          (if (plait-sbcl:variable-defined-p symbol) 4 0)
          (if (plait-sbcl:type-defined-p symbol) 8 0)))

(defun defined-symbols ()
  "Each symbol naming a function, a setf function or a variable, with its SYMBOL-KIND, by
identity: cheap to take twice."
  (let ((defined (make-hash-table :test 'eq :size 8192)) (setf-name (list 'setf nil)))
    (do-walked-symbols (s)
      (let ((kind (symbol-kind s setf-name)))
        (unless (zerop kind)
          (setf (gethash s defined) kind))))
    defined))

(defun defined-since (before)
  "Qualified names of the functions, of the variables, and of the types, defined since BEFORE
(DEFINED-SYMBOLS) was taken: one pass over the symbols, consing only for what is new."
  (let ((functions '()) (variables '()) (types '()) (setf-name (list 'setf nil)))
    (do-walked-symbols (s)
      (let ((new (logandc2 (symbol-kind s setf-name) (gethash s before 0))))
        (when (logtest new 1)
          (pushnew (qualified s) functions :test #'string=))
        (when (logtest new 2)
          (pushnew (qualified (list 'setf s)) functions :test #'string=))
        (when (logtest new 4)
          (pushnew (qualified s) variables :test #'string=))
        (when (logtest new 8)
          (pushnew (qualified s) types :test #'string=))))
    (values (sort functions #'string<) (sort variables #'string<) (sort types #'string<))))

(defun package-names (packages)
  "The names and nicknames of PACKAGES."
  (sort (loop :for p :in packages :append (cons (package-name p) (package-nicknames p)))
        #'string<))

(defun missing-package (condition)
  "The name of the package CONDITION says does not exist, as a string, or NIL: a
PACKAGE-ERROR's own, or, where the reader or a compile wraps one (a #. form's, read while
compiling), the name its message gives."
  (loop :for c = condition :then (plait-sbcl:unwrap-condition c)
        :repeat 4
        :do (when (typep c 'package-error)
              (let ((p (ignore-errors (package-error-package c))))
                (typecase p
                  (package (return (package-name p)))
                  ((or string symbol character) (return (string p))))))
        :finally
           (let* ((text (ignore-errors (princ-to-string condition)))
                  (at (and text (or (search "The name " text) (search "Package " text)))))
             (when (and at (or (search "does not designate any package" text)
                               (search "does not exist" text)))
               (let* ((start (+ at (if (char= (char text at) #\T) 9 8)))
                      (end (position-if (lambda (ch) (member ch '(#\Space #\Newline)))
                                        text :start start))
                      (word (string-trim "\":#" (subseq text start end))))
                 (return (and (plusp (length word)) word)))))))

(defun note-unseen (kind names)
  "Say in the log, one line each, the NAMES of KIND (function, variable, type or package) this
compile used and did not find: plait lint reads them for a compile that failed."
  (dolist (name names)
    (format *error-output* "~&plait: undefined ~a ~a~%" kind name)))

(defvar *defined-when-warm* nil
  "In a worker forked from a warm server: the functions and variables defined when the server
was ready.")

(push (lambda () (setf *defined-when-warm* (defined-symbols))) *when-warm*)

(defvar *fixed-source* nil
  "The truename (a string) of the source being compiled, whose fasl records its write date as
0, so that the same bytes give the same fasl after a touch.")

;; Encapsulated once, here in the image that becomes the definitions core, rather than in each
;; compile: encapsulating is costly next to a forked worker's whole life.
(plait-sbcl:wrap-function 'file-write-date 'plait-fixed-date
  (lambda (f file)
    (if (and *fixed-source*
             (ignore-errors (string= (namestring (truename file)) *fixed-source*)))
        0
        (funcall f file))))

;;; Diagnostics: where the compiler was when it complained, as file:line:column (both 1-based),
;;; from SBCL's error context (the top-level form being compiled and the path to the subform in
;;; it) and the subforms its form-tracking stream records as it reads each top-level form.

(defvar *source-text* nil "(truename . text) of the last source a position was looked up in.")

(defun line-column (file position)
  "The 1-based line and column of character POSITION in FILE, past the whitespace and comment
lines SBCL counts into a top-level form's position."
  (let ((name (namestring file)))
    (unless (equal (car *source-text*) name)
      (setf *source-text*
            (cons name (ignore-errors
                        (uiop:read-file-string file :external-format
                                               '(:utf-8 :replacement #\?))))))
    (let ((text (cdr *source-text*)))
      (when (and text (<= position (length text)))
        (loop :while (< position (length text))
              :do (let ((c (char text position)))
                    (cond ((member c '(#\Space #\Tab #\Newline #\Return #\Page))
                           (incf position))
                          ((char= c #\;)
                           (setf position (or (position #\Newline text :start position)
                                              (length text))))
                          (t (return)))))
        (let ((start (1+ (or (position #\Newline text :end position :from-end t) -1))))
          (values (1+ (count #\Newline text :end position)) (1+ (- position start))))))))

(defvar *error-noted* nil
  "Whether this compile has printed an error of the compiler's (NOTE-DIAGNOSTIC).")

(defun first-line (condition)
  "CONDITION's message on one line, without SBCL's advice on intercepting it."
  (let* ((text (princ-to-string condition))
         (advice "Use *BREAK-ON-SIGNALS* to intercept.")
         (at (search advice text)))
    (when at
      (setf text (concatenate 'string (subseq text 0 at) (subseq text (+ at (length advice))))))
    ;; SBCL's pointer to its manual ends the message.
    (setf text (subseq text 0 (search "See also:" text)))
    (format nil "~{~a~^ ~}"
            (remove "" (uiop:split-string text :separator '(#\Space #\Newline #\Tab #\Return))
                    :test #'string=))))

(defun locate (condition)
  "Where SBCL is compiling as CONDITION is signalled, as FILE:LINE:COLUMN (or less, where SBCL
knows less), and CONDITION's message's first line."
  (let* ((inner (plait-sbcl:unwrap-condition condition))
         (file (or (plait-sbcl:error-source-file) *fixed-source*))
         (message (first-line inner))
         line column)
    (cond ((plait-sbcl:reader-error-in-compile-p inner)
           ;; The reader stopped just past the offending character: SBCL's 0-based column
           ;; of where it stopped is that character's 1-based one.
           (let ((at (ignore-errors
                      (let ((stream (stream-error-stream inner)))
                        (plait-sbcl:line-and-column stream (file-position stream))))))
             (setf line (car at) column (cdr at)
                   message (let ((text (first-line (plait-sbcl:unwrap-condition inner))))
                             ;; The reader's message goes on with where it was: said above.
                             (format nil "read error: ~a"
                                     (string-right-trim " " (subseq text 0 (search " Line: "
                                                                                   text))))))))
          (t
           (let ((start (plait-sbcl:error-source-position)))
             (when (and start file (typep file '(or string pathname)))
               (setf (values line column) (line-column file start))))))
    (values (format nil "~a~@[:~d~]~@[:~d~]" (if file (namestring file) "?") line
                    (and line column))
            message)))

(defun note-diagnostic (severity condition)
  "Record CONDITION where SBCL is compiling, and print it as FILE:LINE:COL: SEVERITY: MESSAGE,
the form compilers use, which plait shows first when the compile fails. Returns (FILE:LINE:COL)."
  (multiple-value-bind (where message) (locate condition)
    (when (string= severity "error")
      (setf *error-noted* t))
    (format *error-output* "~&~a: ~a: ~a~%" where severity message)
    (list where)))

(defvar *user-root* nil
  "For a builder that reads or writes what builders made in their sandboxes: the directory the
user's output translations put what ./out/ holds (a namestring).")

(defun sandbox-out ()
  (namestring (merge-pathnames "out/" (uiop:getcwd))))

(defun as-the-user-sees (namestring)
  "Where the user's images see NAMESTRING, a file under ./out/; NIL if it is not, or when no
user root is given."
  (let ((out (sandbox-out)))
    (when (and *user-root* (uiop:string-prefix-p out namestring))
      (concatenate 'string *user-root* (subseq namestring (length out))))))

;; A fasl says what it was compiled from in its header, and in its debug information
;; (sb-c::*source-namestring*, bound around the compile): for a generated file, where the user's
;; images see it, not a sandbox's path.
(let ((open (find-symbol "OPEN-FASL-OUTPUT" "SB-FASL")))
  (when open
    (plait-sbcl:wrap-function open 'plait-source-name
      (lambda (f name where)
        (funcall f name (or (and (stringp where) (as-the-user-sees where)) where))))))

(defun as-octets (string)
  "STRING's UTF-8 bytes, one character each, as a file read as Latin-1 has them."
  (sb-ext:octets-to-string (sb-ext:string-to-octets string :external-format :utf-8)
                           :external-format :latin-1))

(defun replace-all (text old new)
  (with-output-to-string (s)
    (loop :with start = 0
          :for at = (search old text :start2 start)
          :do (write-string text s :start start :end (or at (length text)))
          :while at
          :do (write-string new s)
              (setf start (+ at (length old))))))

(defun relocate (files)
  "In each text file among FILES, make the paths under ./out/ name where the user's images see
those files (cffi-grovel writes the directory of the library it links into the Lisp file it
generates). Files with a NUL byte are binaries, and are left as they are."
  (let ((out (as-octets (sandbox-out)))
        (root (as-octets *user-root*)))
    (dolist (file files)
      (when (probe-file file)
        ;; Read as Latin-1, any bytes round-trip.
        (let ((text (uiop:read-file-string file :external-format :latin-1)))
          (when (and (search out text) (not (find (code-char 0) text)))
            (with-open-file (s file :direction :output :if-exists :supersede
                                    :external-format :latin-1)
              (write-string (replace-all text out root) s))))))))

(defun relocated (args)
  "MAIN, for a builder that reads or writes what builders made in their sandboxes: ARGS are the
user root (*USER-ROOT*), then MAIN's."
  (let ((*user-root* (first args)))
    (main (rest args))))

(defun postpone-gc ()
  "Let what is left of a worker's life allocate without collecting the compile's garbage,
which its exit drops anyway, while the heap has room for it: a collection would cost more
than touching fresh pages."
  (when (> (plait-upgrade:heap-room) (* 512 1024 1024))
    (plait-sbcl:set-runtime-word "auto_gc_trigger"
                                 (+ (plait-sbcl:dynamic-usage) (* 256 1024 1024)))))

(defun usage ()
  "This process's CPU time so far (user and system, in seconds) and its minor page faults."
  (plait-sbcl:cpu-seconds-and-faults))

(defvar *clock* (get-internal-real-time))
(defvar *gc-clock* 0)
(defvar *cpu-clock* 0)
(defvar *faults* 0)

(defun phase-done (what)
  "Say in the log how long each phase took, how much of it went to collecting garbage, the CPU
it took and the pages it faulted in (the clock is SBCL's coarse one: 4 ms steps)."
  (let ((now (get-internal-real-time)) (gc sb-ext:*gc-run-time*))
    (multiple-value-bind (cpu faults) (usage)
      (format *error-output* "~&plait: ~a took ~,3fs (gc ~,3fs, cpu ~,3fs, ~d page faults)~%"
              what (/ (- now *clock*) internal-time-units-per-second)
              (/ (- gc *gc-clock*) internal-time-units-per-second)
              (- cpu *cpu-clock*) (- faults *faults*))
      (setf *clock* now *gc-clock* gc *cpu-clock* cpu *faults* faults))))

(defun behaviour (name)
  (intern (string-upcase name) :keyword))

(defun small-nursery ()
  "Collect after every 24 MB a compile allocates rather than SBCL's 5% of the heap: a worker
that lives for one compile faults in each page it allocates in for the first time, and exits
without reusing more than its nursery, so a smaller nursery is fewer pages faulted in."
  (setf (sb-ext:bytes-consed-between-gcs) (* 24 1024 1024)))

(defun main (args)
  (setf *clock* (get-internal-real-time) *gc-clock* sb-ext:*gc-run-time*)
  (setf (values *cpu-clock* *faults*) (usage))
  (plait-upgrade:tune-for-one-compile)
  (small-nursery)
  (destructuring-bind (warnings-file on-warnings on-failure mode target &rest loads) args
    (use-sandbox-translations)
    (as-in-a-plan (compile-target warnings-file on-warnings on-failure mode target loads))))

(defun compile-target (warnings-file on-warnings on-failure mode target loads)
  (perform-loads loads)
  (phase-done (format nil "loading ~d dependencies" (length loads)))
  (multiple-value-bind (o c) (action-of target)
    (let ((warnings '()) (undefined '()) (undefined-variables '()) (undefined-types '())
          (missing-packages '()) (fasls (asdf:output-files o c))
          ;; What the file defines is what is defined after loading its fasl and not
          ;; before compiling it (compiling may define some, at compile time).
          (before (or (and (null loads) *defined-when-warm*) (defined-symbols)))
          (packages-before (list-all-packages)))
      (setf *fixed-source* (namestring (truename (or (first (asdf:input-files o c))
                                                     (asdf:component-pathname c)))))
      (plait-sbcl:forget-interned-pathnames)
      (let ((uiop:*compile-file-warnings-behaviour* (behaviour on-warnings))
            (uiop:*compile-file-failure-behaviour* (behaviour on-failure))
            (failure nil))
        (handler-bind ((warning
                         (lambda (w)
                           (when (bookkeeping-p w) (muffle-warning w))
                           (let ((style (typep w 'style-warning)))
                             (push (list* (if style "style-warning" "warning")
                                          (princ-to-string w)
                                          (if style
                                              (list (locate w))
                                              (note-diagnostic "warning" w)))
                                   warnings))))
                       (plait-sbcl:compiler-error
                         (lambda (e)
                           (let ((package (missing-package e)))
                             (when package (push package missing-packages)))
                           (note-diagnostic "error" e))))
          (with-compilation-unit (:override t)
            ;; Heap or stack exhaustion is no ERROR but fails the compile all the same. Its
            ;; report needs the dynamic extent it was signalled in, so it is taken there.
            (block perform
              (handler-bind ((serious-condition
                               (lambda (e)
                                 (setf failure e)
                                 ;; What a compile under --deps declared may lack.
                                 (let ((inner (plait-sbcl:unwrap-condition e))
                                       (package (missing-package e)))
                                   (when package (push package missing-packages))
                                   (typecase inner
                                     (undefined-function
                                      (push (qualified (cell-error-name inner)) undefined))
                                     (unbound-variable
                                      (push (qualified (cell-error-name inner))
                                            undefined-variables))))
                                 (unless (typep e 'uiop:compile-file-error)
                                   (note-diagnostic "error" e))
                                 (return-from perform))))
                (plait-sbcl:with-source-namestring ((as-the-user-sees *fixed-source*))
                  (asdf:perform o c))))
            (setf undefined (append undefined (mapcar #'qualified
                                                      (plait-sbcl:undefined-names :function)))
                  undefined-variables (append undefined-variables
                                              (mapcar #'qualified
                                                      (plait-sbcl:undefined-names :variable)))
                  undefined-types (mapcar #'qualified (plait-sbcl:undefined-names :type)))
            (plait-sbcl:forget-undefined-warnings)))
        (when (string= mode "declared")
          (note-unseen "package" (remove-duplicates missing-packages :test #'string=))
          (note-unseen "function" (remove-duplicates undefined :test #'string=))
          (note-unseen "variable" (remove-duplicates undefined-variables :test #'string=))
          (note-unseen "type" (remove-duplicates undefined-types :test #'string=)))
        (when failure
          (when (and (typep failure 'uiop:compile-file-error)
                     (not *error-noted*))
            ;; No error of the compiler's: ASDF failed the compile for its warnings.
            (format *error-output* "~&~a: error: ~:[a WARNING fails the compile (--on-failure ~
                                    error, SBCL's default under ASDF; --on-failure warn lets it ~
                                    pass)~;warnings fail the compile (--on-warnings error)~]~%"
                    *fixed-source* (typep failure 'uiop:compile-warned-error)))
          (when (string= mode "declared")
            (format *error-output* "~&~a: note: with --deps declared this compile saw only ~
              what the .asd declares; if it builds with --deps system, the file uses a ~
              component it does not :depends-on~%" *fixed-source*))
          (write-warnings warnings-file warnings undefined undefined-variables undefined-types
                          '() '() '() '())
          (finish-output *error-output*)
          (sb-ext:exit :code 1 :abort t))
        (when *user-root*
          (relocate (remove "fasl" fasls :key #'pathname-type :test #'equal)))
        (phase-done "compiling")
        (postpone-gc)
        (let ((fasl (find "fasl" fasls :key #'pathname-type :test #'equal)))
          (when fasl
            ;; Loaded by ASDF's load-op, as ASDF would load it next, with the methods the
            ;; component's class has around it (clx's abort a DEFCONSTANT's redefinition with
            ;; an EQUAL value). When that fails, so does the build.
            (perform-or-exit (asdf:make-operation 'asdf:load-op) c 1
                             "plait: loading the fasl of ~a failed: ~a"
                             (namestring (asdf:component-pathname c))))
          (multiple-value-bind (functions variables types) (defined-since before)
            (write-warnings warnings-file warnings undefined undefined-variables undefined-types
                            functions variables types
                            (package-names (set-difference (list-all-packages)
                                                           packages-before))))
          (phase-done "recording definitions"))))))

(defun write-warnings (file warnings undefined undefined-variables undefined-types
                       defined defined-variables defined-types packages)
  (with-open-file (s file :direction :output :if-exists :supersede :external-format :utf-8)
    (write-json
     (list :obj
           :warnings (array-of
                      (mapcar (lambda (w)
                                (destructuring-bind (kind text &optional where) w
                                  `(:obj :kind ,kind :text ,text ,@(and where `(:where ,where)))))
                              (reverse warnings)))
           :undefined (array-of (remove-duplicates undefined :test #'string=))
           :defined (array-of defined)
           :undefined-variables (array-of (remove-duplicates undefined-variables
                                                             :test #'string=))
           :defined-variables (array-of defined-variables)
           :undefined-types (array-of (remove-duplicates undefined-types :test #'string=))
           :defined-types (array-of defined-types)
           :packages (array-of packages))
     s)))
