;;;; The SBCL internals plait's Lisp drivers use, each behind a function named for what it does,
;;;; so that an SBCL that changes one breaks here, in one place, and in
;;;; tests/test_sbcl_internals.py, which calls each. The drivers use SBCL's documented
;;;; interfaces (sb-ext, sb-mop) directly.
;;;;
;;;; System calls go through sb-alien to the C library and through sb-unix, not sb-posix:
;;;; requiring sb-posix would load it into the images that compile the user's systems, where it
;;;; is not under ASDF (a system that requires sb-posix itself, or asks whether it is loaded,
;;;; would see it there and not under ASDF).
;;;;
;;;; Every plait Lisp process loads this file first (upgrade.lisp and product.lisp load it).

(defpackage :plait-sbcl
  (:use :cl)
  (:export
   ;; processes
   #:fork-process #:new-session #:redirect-fd #:change-directory #:wait-for #:close-on-exec #:getpid
   #:clear-environment #:set-environment-variable #:join-namespace #:namespace-parent
   #:file-identity #:open-fd #:close-fd
   #:make-pipe #:kill-process #:write-fd #:fd-input-stream #:fd-output-stream #:stream-fd
   #:o-rdonly #:o-wronly-create-truncate
   ;; threads
   #:stop-finalizer #:start-finalizer #:other-threads-p
   ;; the runtime and the heap
   #:runtime-variable #:set-runtime-int #:set-runtime-word #:keep-freed-pages-mapped
   #:dynamic-usage #:cpu-seconds-and-faults
   ;; the compiler
   #:error-source-position #:error-source-file #:reader-error-in-compile-p
   #:unwrap-condition #:line-and-column #:undefined-names #:forget-undefined-warnings
   #:variable-defined-p #:type-defined-p #:forget-interned-pathnames
   #:with-source-namestring #:wrap-function #:compiler-error
   ;; fasls
   #:fasl-header-ok-p))
(in-package :plait-sbcl)

;;; Processes: the C library's calls, for the warm servers (serve.lisp).

(defmacro c-call (name result &rest args)
  "Call the C library's NAME: ARGS alternate alien types and values."
  (let ((types (loop :for (type) :on args :by #'cddr :collect type))
        (values (loop :for (nil value) :on args :by #'cddr :collect value)))
    `(sb-alien:alien-funcall
      (sb-alien:extern-alien ,name (function ,result ,@types)) ,@values)))

(defun fork-process ()
  "fork(2): the child's pid in the parent, 0 in the child, -1 on failure."
  (c-call "fork" sb-alien:int))

(defun new-session ()
  "setsid(2): this process leads a session, and a process group, of its own."
  (c-call "setsid" sb-alien:int))

(defun redirect-fd (from to)
  "dup2(2): descriptor TO becomes a copy of FROM."
  (c-call "dup2" sb-alien:int sb-alien:int from sb-alien:int to))

(defun change-directory (directory)
  "chdir(2); true when it succeeded."
  (zerop (c-call "chdir" sb-alien:int sb-alien:c-string directory)))

(defun wait-for (pid)
  "waitpid(2) for the child PID: its exit code, or minus the signal that killed it."
  (sb-alien:with-alien ((status sb-alien:int))
    (c-call "waitpid" sb-alien:int sb-alien:int pid (* sb-alien:int) (sb-alien:addr status)
            sb-alien:int 0)
    (let ((signal (logand status #x7f)))
      (if (zerop signal) (ldb (byte 8 8) status) (- signal)))))

(defun close-on-exec (fd)
  "fcntl(2) F_SETFD FD_CLOEXEC: a program this process runs does not inherit FD."
  (c-call "fcntl" sb-alien:int sb-alien:int fd sb-alien:int 2 sb-alien:int 1))

(defun getpid ()
  (c-call "getpid" sb-alien:int))

(defun clear-environment ()
  (c-call "clearenv" sb-alien:int))

(defun set-environment-variable (name value)
  (c-call "setenv" sb-alien:int sb-alien:c-string name sb-alien:c-string value sb-alien:int 1))

(defun join-namespace (fd)
  "setns(2) into the namespace of FD (an open /proc/PID/ns/KIND), which it then closes; true
when it succeeded. The caller must be single threaded to join a user or mount namespace."
  (prog1 (zerop (c-call "setns" sb-alien:int sb-alien:int fd sb-alien:int 0))
    (close-fd fd)))

(defun namespace-parent (fd)
  "ioctl(2) NS_GET_PARENT: a descriptor for the user namespace that owns the one FD (an open
/proc/PID/ns/user) names, or NIL (the initial namespace has none)."
  (let ((parent (c-call "ioctl" sb-alien:int sb-alien:int fd sb-alien:unsigned-long #xb702)))
    (and (>= parent 0) parent)))

(defun file-identity (fd)
  "fstat(2): (DEVICE . INODE) of what FD is open on; a namespace's identity."
  (multiple-value-bind (ok device inode) (sb-unix:unix-fstat fd)
    (and ok (cons device inode))))

(defun o-rdonly () sb-unix:o_rdonly)

(defun o-wronly-create-truncate ()
  (logior sb-unix:o_wronly sb-unix:o_creat sb-unix:o_trunc))

(defun open-fd (path flags)
  "open(2) with mode 0644; the descriptor, or NIL."
  (sb-unix:unix-open path flags #o644))

(defun close-fd (fd)
  (sb-unix:unix-close fd))

(defun make-pipe ()
  "pipe(2): the read end and the write end, or NIL."
  (sb-unix:unix-pipe))

(defun kill-process (pid)
  "SIGKILL to PID."
  (sb-unix:unix-kill pid sb-unix:sigkill))

(defun write-fd (fd octets)
  "write(2) of OCTETS, an (unsigned-byte 8) vector, in one call."
  (sb-unix:unix-write fd octets 0 (length octets)))

(defun fd-input-stream (fd)
  (sb-sys:make-fd-stream fd :input t :external-format :utf-8))

(defun fd-output-stream (fd)
  (sb-sys:make-fd-stream fd :output t :external-format :utf-8))

(defun stream-fd (stream)
  (sb-sys:fd-stream-fd stream))

;;; Threads: fork copies only the calling thread, and a child's GC would wait for the others.

(defun internal (package name)
  "SBCL's internal NAME in PACKAGE, or NIL where this SBCL has none (read at run time, so that
another SBCL can still load this file)."
  (find-symbol name package))

(defun stop-finalizer ()
  "Stop SBCL's finalizer thread, if it runs, and drop what exited threads leave registered
until they are joined."
  (let ((thread (internal "SB-IMPL" "*FINALIZER-THREAD*"))
        (stop (internal "SB-IMPL" "FINALIZER-THREAD-STOP"))
        (dispose (internal "SB-THREAD" "%DISPOSE-THREAD-STRUCTS")))
    (when (and thread stop (typep (symbol-value thread) 'sb-thread:thread))
      (funcall stop))
    (when dispose
      (funcall dispose))))

(defun start-finalizer ()
  "Start the finalizer thread again (saving a core needs it)."
  (let ((start (internal "SB-IMPL" "FINALIZER-THREAD-START")))
    (when start (funcall start))))

(defun other-threads-p ()
  "Whether a thread other than this one is registered."
  (let ((all (internal "SB-THREAD" "*ALL-THREADS*"))
        (listing (internal "SB-THREAD" "AVLTREE-LIST")))
    (if (and all listing)
        (cdr (funcall listing (symbol-value all)))
        (cdr (sb-thread:list-all-threads)))))

;;; The runtime's C variables, and the heap.

(defun runtime-variable (name)
  "The address (a SAP) of the SBCL runtime's C variable NAME, or NIL on an SBCL without it: a
tuning plait makes there is then not made."
  (let ((address (sb-sys:find-foreign-symbol-address name)))
    (and address (sb-sys:int-sap address))))

(defun set-runtime-int (name value)
  "Set the runtime's C int NAME; true if it has one."
  (let ((sap (runtime-variable name)))
    (when sap
      (setf (sb-sys:signed-sap-ref-32 sap 0) value)
      t)))

(defun set-runtime-word (name value)
  "Set the runtime's C word (uword_t, os_vm_size_t) NAME; true if it has one."
  (let ((sap (runtime-variable name)))
    (when sap
      (setf (sb-sys:sap-ref-word sap 0) value)
      t)))

(defun keep-freed-pages-mapped ()
  "Have the collector keep freed pages mapped: raise small_generation_limit (a C
generation_index_t), under which collections give pages back, to the pseudo-static generation.
True if this SBCL has it."
  (let ((sap (runtime-variable "small_generation_limit")))
    (when sap
      (setf (sb-sys:signed-sap-ref-8 sap 0) sb-vm:+pseudo-static-generation+)
      t)))

(defun dynamic-usage ()
  "Bytes of the heap in use."
  (sb-kernel:dynamic-usage))

(defun cpu-seconds-and-faults ()
  "This process's CPU time so far (user and system, in seconds) and its minor page faults."
  (multiple-value-bind (ok user system rss ixrss idrss isrss faults)
      (sb-unix:unix-getrusage sb-unix:rusage_self)
    (declare (ignore ok rss ixrss idrss isrss))
    (values (/ (+ user system) 1d6) faults)))

;;; The compiler: where it is, what it found undefined, what a fasl records.

(defun error-context ()
  (ignore-errors (sb-c::find-error-context nil)))

(defun error-source-position ()
  "Where the subform SBCL's error context names starts in the file being compiled (a character
position), else where its top-level form does; NIL outside a compile. From the context's path to
the subform and the subforms the form-tracking stream recorded as it read the form."
  (let* ((context (error-context))
         (info (and context (boundp 'sb-c::*source-info*) sb-c::*source-info*
                    (ignore-errors (sb-c::source-info-file-info sb-c::*source-info*))))
         (subforms (and info (sb-c::file-info-subforms info)))
         (path (and context (reverse (sb-c::compiler-error-context-original-source-path
                                      context)))))
    (or (and subforms path
             (ignore-errors
              ;; The innermost cons on the path: an atom may occur anywhere in the form.
              (let ((form (aref (sb-c::file-info-forms info) (first path))) (found nil))
                (dolist (i (rest path))
                  (when (consp form) (setf found form))
                  (setf form (and (listp form) (nth i form))))
                (when (consp form) (setf found form))
                (loop :for k :from 0 :below (length subforms) :by 3
                      :when (eq (aref subforms (+ k 2)) found)
                        :return (aref subforms k)))))
        (and context (sb-c::compiler-error-context-file-position context)))))

(defun error-source-file ()
  "The file SBCL's error context is in; NIL outside a compile."
  (ignore-errors (sb-c::compiler-error-context-file-name (error-context))))

(defun reader-error-in-compile-p (condition)
  "Whether CONDITION is the reader failing on the file being compiled."
  (typep condition 'sb-c::input-error-in-compile-file))

(defun unwrap-condition (condition)
  "The condition CONDITION wraps (the reader's, in a compile's input error), or itself."
  (if (typep condition 'sb-int:encapsulated-condition)
      (sb-int:encapsulated-condition condition)
      condition))

(defun line-and-column (stream position)
  "(LINE . COLUMN) of character POSITION in the form-tracking STREAM: LINE 1-based, COLUMN
0-based."
  (sb-int:line/col-from-charpos stream position))

(defun undefined-names (kind)
  "The names this compilation unit found undefined as KIND (:function, :variable, :type)."
  (loop :for w :in sb-c::*undefined-warnings*
        :when (eq (sb-c::undefined-warning-kind w) kind)
          :collect (sb-c::undefined-warning-name w)))

(defun variable-defined-p (symbol)
  "Whether SYMBOL is known as a variable: special, global, constant or a symbol macro."
  (not (eq (sb-int:info :variable :kind symbol) :unknown)))

(defun type-defined-p (symbol)
  "Whether SYMBOL names a type or a class."
  (or (find-class symbol nil) (sb-int:info :type :kind symbol)))

(defun forget-interned-pathnames ()
  "Forget the pathnames SBCL has interned (it hash-conses them), so that a pathname read next
is made from its namestring. An interned one keeps the strings it was first made with: a base
string where a fasl dumped one (ASDF's), a character string where the reader made it. Which
one a compiled literal pathname shares, and so the bytes of its fasl, would otherwise depend on
what the image did before (a warm server's loads, a saved core)."
  (clrhash sb-impl::*pathnames*))

(defun forget-undefined-warnings ()
  "Keep the compilation unit from summarizing what it found undefined."
  (setf sb-c::*undefined-warnings* nil))

(defmacro with-source-namestring ((name) &body body)
  "BODY with compiled fasls recording NAME (when not NIL) as the file they were compiled from."
  `(let ((sb-c::*source-namestring* ,name))
     ,@body))

(defun wrap-function (name tag wrapper)
  "Have calls to the function NAME call WRAPPER with the original function and the arguments,
once per TAG; NAME may be in a locked package. NIL if NAME is not a function here."
  (when (and (fboundp name) (not (sb-int:encapsulated-p name tag)))
    (sb-ext:without-package-locks
      (sb-int:encapsulate name tag wrapper))
    t))

(deftype compiler-error ()
  "What SBCL signals for an error in the code it compiles."
  'sb-c:compiler-error)

;;; Fasls.

(defun fasl-header-ok-p (stream)
  "Whether the fasl STREAM (of octets) begins has a header this SBCL loads."
  (handler-case (progn (sb-fasl::check-fasl-header stream) t)
    (error () nil)))
