;;;; plait's warm images: an SBCL on the definitions core that forks a process for each request,
;;;; so that a compile starts with SBCL up and its dependencies loaded instead of doing both
;;;; again (loaded into the definitions core by the dump):
;;;;   sbcl --core CORE --script call.lisp plait-serve:main IN OUT
;;;; Requests, one Lisp form per line on the fifo IN:
;;;;   (:run ID CWD LOG FUNCTION ARGS [NS])
;;;;                                      have a worker, in a session of its own, in CWD, with
;;;;                                      stdout and stderr to LOG, call FUNCTION on ARGS: what
;;;;                                      `sbcl --core CORE --script call.lisp FUNCTION ARGS...`
;;;;                                      started in CWD does. The worker was forked while the
;;;;                                      server waited for the request (MAKE-STANDBY). With NS,
;;;;                                      the pid of a process in the namespaces the command is
;;;;                                      to run in, the worker joins them first (JOIN).
;;;;   (:status ID)                      wait for the worker ID, which has ended, and say how
;;;;   (:serve ID CWD LOG IN OUT LOADS)  fork a server that performs LOADS as a compile does
;;;;                                      (their fasls under CWD/out/), then serves IN and OUT;
;;;;                                      forked twice, in a session of its own, it lives on
;;;;                                      when this one is stopped
;;;; Replies, one line each on OUT: "pid PID" first, "ready" once serving, "started ID PID" for
;;;; :run, "exited ID STATUS" for :status (STATUS the exit code, or minus the signal that killed
;;;; it). A worker that ends through FINISH says "exited ID CODE" itself first, before it exits.
;;;; The server only ever blocks reading IN (and waiting for a worker that has ended, on
;;;; :status): plait learns that a worker ended from that line, or from its pid.
;;;; EOF on IN stops the server; its workers run on.

(defpackage :plait-serve
  (:use :cl :plait-lisp)
  (:import-from :plait-sbcl #:fork-process #:new-session #:redirect-fd #:change-directory
                #:wait-for #:close-on-exec #:getpid #:clear-environment
                #:set-environment-variable #:join-namespace #:namespace-parent
                #:file-identity #:open-fd #:close-fd #:make-pipe
                #:kill-process #:write-fd #:fd-input-stream #:fd-output-stream #:stream-fd
                #:o-rdonly #:o-wronly-create-truncate #:stop-finalizer #:start-finalizer
                #:other-threads-p)
  (:export #:main #:detach))
(in-package :plait-serve)

(defun must-open (path flags)
  (or (open-fd path flags) (error "cannot open ~a" path)))

(defun redirect (log)
  "Standard input from /dev/null; standard output and error to LOG."
  (let ((null (must-open "/dev/null" (o-rdonly)))
        (out (must-open log (o-wronly-create-truncate))))
    (redirect-fd null 0)
    (redirect-fd out 1)
    (redirect-fd out 2)
    (close-fd null)
    (close-fd out)))

(defparameter *namespaces* '("user" "mnt" "net" "ipc" "uts")
  "The namespaces a worker joins, the user namespace first: it owns the others.")

(defun join (pid)
  "Join the namespaces of the process PID (a holder plait made with bubblewrap, which shows only
the command's sandbox, its inputs and the toolchain), as a forked worker, which is single
threaded as setns(2) needs. Each is opened first: the mount namespace has no /proc to open them
from. Run by a user other than root, bubblewrap nests the command's user namespace in the one
that owns the others: the worker joins that one first, for the right to join them, and the
command's own last, which leaves it no more rights than the command has. Failing to join a
namespace that shows files fails the command, so that it never sees more than it was meant to."
  (let* ((fds (loop :for kind :in *namespaces*
                    :collect (cons kind (must-open (format nil "/proc/~d/ns/~a" pid kind)
                                                   (o-rdonly)))))
         (user (cdr (assoc "user" fds :test #'string=)))
         (mine (let ((self (must-open "/proc/self/ns/user" (o-rdonly))))
                 (prog1 (file-identity self) (close-fd self))))
         (owner (namespace-parent user)))
    (when owner
      (if (equal (file-identity owner) mine)
          (close-fd owner)
          (join-namespace owner)))
    (loop :for (kind . fd) :in fds
          :unless (string= kind "user")
            :do (unless (join-namespace fd)
                  (error "cannot join the ~a namespace of process ~d" kind pid)))
    (join-namespace user)))

(defun enter (cwd)
  "Work in CWD, as a process started there would."
  (unless (change-directory cwd)
    (error "cannot enter ~a" cwd))
  (setf *default-pathname-defaults* (uiop:ensure-directory-pathname cwd)))

(defun sole-thread ()
  "Leave this thread alone in the image, as fork needs (it copies only the calling thread, and
a child's GC would wait for the others)."
  (stop-finalizer)
  (when (other-threads-p)
    (error "cannot fork: other threads are running")))

(defvar *standby* nil
  "The worker forked ahead of the next :run request, which it waits for: (PID . FD), FD the end
of its pipe this server writes the request to.")

(defun fork-child (streams)
  "Fork; in the child, close the server's STREAMS and its end of the standby's pipe. Returns the
child's pid in the server, 0 in the child."
  (sole-thread)
  (finish-output *standard-output*)
  (finish-output *error-output*)
  (let ((pid (fork-process)))
    (when (zerop pid)
      (dolist (s streams) (close-fd (stream-fd s)))
      (when *standby*
        (close-fd (cdr *standby*))
        (setf *standby* nil)))
    pid))

(defun fork (streams cwd log &optional (enter t))
  "Fork a child that leaves the server behind: a session of its own, LOG for output, CWD to
work in (entered now when ENTER). Returns its pid in the server, 0 in it."
  (let ((pid (fork-child streams)))
    (when (zerop pid)
      (new-session)
      (redirect log)
      (when enter
        (enter cwd)))
    pid))

(defvar *report* nil
  "In a worker given its request as a standby: (FD . ID), FD the server's reply fifo, on which
it says how it ends, as the server would once it is gone (\"exited ID CODE\").")

(defun finish (code)
  (finish-output *standard-output*)
  (finish-output *error-output*)
  (when *report*
    ;; Said before exiting, which unmaps the image: waiting for the exit would lengthen each
    ;; step of a chain of dependent compiles. One write, of less than PIPE_BUF: no other reply is mixed in.
    (let ((line (sb-ext:string-to-octets (format nil "exited ~d ~d~%" (cdr *report*) code))))
      (write-fd (car *report*) line)))
  (sb-ext:exit :code code :abort t))

(defun work (function args ns cwd)
  "A worker's life: join the namespaces of process NS (if not NIL), enter CWD, call FUNCTION on
ARGS, as call.lisp does, then exit; an unhandled error exits 1 through the disabled debugger, as
under --script."
  (let ((code 1))
    (unwind-protect
         (progn (when ns (join ns))
                (enter cwd)
                (call function args)
                (setf code 0))
      (finish code))))

(defun make-standby (in out)
  "Fork the worker for the next :run request now, while no request waits on this server (which
reads IN and replies on OUT): the fork, and the child's new session (SETSID, which on a busy
machine waits for the scheduler to place it in a group of its own), then cost no compile of a
chain of dependent ones any time. It reads
its request from a pipe, and exits when the server does without having sent it one."
  (multiple-value-bind (request-in request-out) (make-pipe)
    (when request-in
      (let ((pid (fork-child (list in))))
        (cond ((zerop pid)
               (close-fd request-out)
               (new-session)
               (let ((request (with-open-stream (s (fd-input-stream request-in))
                                (let ((*read-eval* nil)) (read s nil nil))))
                     (replies (stream-fd out)))
                 (unless request
                   (finish 0))
                 ;; What the command runs does not inherit the reply fifo (F_SETFD, FD_CLOEXEC).
                 (close-on-exec replies)
                 (destructuring-bind (id cwd log function args &optional ns) request
                   (setf *report* (cons replies id))
                   (redirect log)
                   (work function args ns cwd))))
              (t
               (close-fd request-in)
               (setf *standby* (cons pid request-out))))))))

(defun hand-over (id cwd log function args &optional ns)
  "Give the standby worker its request; its pid, or NIL if it could not be given one."
  (destructuring-bind (pid . fd) *standby*
    (setf *standby* nil)
    (handler-case
        (with-open-stream (s (fd-output-stream fd))
          (with-standard-io-syntax
            (prin1 (list id cwd log function args ns) s))
          pid)
      (error ()  ; it is gone: SBCL ignores SIGPIPE, and the write fails
        (kill-process pid)
        (wait-for pid)
        nil))))

(defun become-server (in out loads)
  "In a child of the server: fork the server that performs LOADS and serves IN and OUT."
  (unless (zerop (fork-process))
    (finish 0))
  (new-session)
  (serve in out loads)
  (finish 0))

(defun reply (out control &rest args)
  (apply #'format out control args)
  (terpri out)
  (finish-output out))

(defun settle-heap ()
  "Move what this server holds into the oldest generation collections move objects to, once it
is known to fork more than one worker. Its loads leave it in generation 1, which each worker
would copy again at its first collection of that generation. A chain's servers fork one worker
each, and do not collect: the collection would lengthen the chain, at each of its steps."
  (sb-ext:gc :full t))

(defun serve (in-path out-path &optional loads)
  (with-open-file (in in-path)
    (with-open-file (out out-path :direction :output :if-exists :append)
      (let ((pids (make-hash-table)) (runs 0))
        (reply out "pid ~d" (getpid))
        (when loads
          (use-sandbox-translations)
          (perform-loads loads))
        (mapc #'funcall *when-warm*)
        ;; Collecting the young generations makes SBCL give their free pages back (it does so
        ;; after a GC beyond generation 1), and they read as zeros after. Left as they are, a
        ;; worker zeroes each one it allocates in, and the kernel first copies it from this
        ;; server's. What survives
        ;; stays young until a second worker is asked for (SETTLE-HEAP).
        (sb-ext:gc :gen 1)
        (reply out "ready")
        (loop
          ;; One worker forked ahead when ready, and again from the second :run on: a server
          ;; made for a chain of dependent compiles serves one, and a worker forked for nothing
          ;; costs a fork and an exit.
          (unless (or *standby* (= runs 1) (listen in))
            (make-standby in out))
          (let ((request (let ((*read-eval* nil)) (read in nil :eof))))
            (when (eq request :eof)
              (return))
            (destructuring-bind (kind id &rest more) request
              (if (eq kind :status)
                  (progn (reply out "exited ~d ~d" id (wait-for (gethash id pids)))
                         (remhash id pids))
                  (destructuring-bind (cwd log &rest more) more
                    (when (eq kind :run)
                      (when (= (incf runs) 2)
                        (settle-heap)))
                    (let ((pid (or (and (eq kind :run) *standby*
                                        (apply #'hand-over id cwd log more))
                                   (fork (list in out) cwd log (eq kind :serve)))))
                      (when (zerop pid)
                        (ecase kind
                          (:run (destructuring-bind (function args &optional ns) more
                                  (work function args ns cwd)))
                          (:serve (destructuring-bind (in out loads) more
                                    (become-server in out loads)))))
                      (cond ((eq kind :serve) (wait-for pid))
                            (t (setf (gethash id pids) pid)
                               (reply out "started ~d ~d" id pid)))))))))))))

(defun main (args)
  (destructuring-bind (in out) args
    (serve in out)))

(defun detach (in out log script runtime environment)
  "In an image about to be saved as a core (the dump): fork the server that
`RUNTIME --core CORE --script SCRIPT plait-serve:main IN OUT` would be, started in LOG's
directory with only ENVIRONMENT (NAME=VALUE strings), its output to LOG; this process goes on
to save the core. The heap is the one the core will hold; what a start from the core would set
up differently (environment, argv, the package SCRIPT is loaded in) is set up here, and the
garbage the dump left, which the save would drop, is collected: no worker copies it."
  (unless (zerop (fork '() (directory-namestring log) log))
    ;; The save stops the finalizer thread, which forking stopped: it must run again first.
    (start-finalizer)
    (return-from detach))
  (clear-environment)
  (dolist (pair environment)
    (let ((=at (position #\= pair)))
      (set-environment-variable (subseq pair 0 =at) (subseq pair (1+ =at)))))
  (setf sb-ext:*posix-argv* (list runtime "plait-serve:main" in out))
  (sb-ext:gc :full t)
  (let ((*package* (find-package :cl-user)))
    (load script))
  (finish 0))
