;;;; plait's test runner, run by a fresh SBCL on the definitions core:
;;;;   sbcl --core CORE --script call.lisp plait-run:main ACTION...
;;;; (loaded into the definitions core by the dump).
;;;; Performs each ACTION (a printed list: operation-class system component-name...) in order, with
;;;; ASDF's own perform and the user's output translations (the fasls plait built are there).
;;;; ASDF's test-op ignores what a framework returns, so the runs of the frameworks Debian ships
;;;; are watched, however deep inside other performs they start: each suite that ends is recorded
;;;; with its tests and their statuses, one JSON object a line, to the file PLAIT_TEST_RECORD
;;;; names.
;;;; A test-op of the user's that runs no suite plait knows is recorded as unknown. A suite that
;;;; failed, or an error, exits 1; otherwise the run exits 0 and the records give the verdict.

(defpackage :plait-run (:use :cl :plait-lisp :plait-json) (:export #:main))
(in-package :plait-run)

(defvar *record* nil "Where the records go, or NIL.")
(defvar *failed* nil "The framework of the first suite that reported a failure.")
(defvar *depth* 0 "How many watched framework calls are under way: only the outermost ends a suite.")

(defstruct frame
  "A test-op perform of the user's under way."
  system (suites 0) (children 0))

(defvar *frames* '() "The test-op performs under way, innermost first.")

(defun write-record (&rest fields)
  (when *record*
    (write-json (cons :obj fields) *record*)
    (terpri *record*)
    (finish-output *record*)))

;;; A suite: what a framework's outermost run reported. Each test is (name status message),
;;; status one of passed, failed, skipped, expected (an expected failure, not a failure).

(defun end-suite (framework suite tests &key ok)
  "Record a suite. OK, when given, is the framework's own verdict (for runners that count
nothing); else the suite failed if a test did."
  (let ((ok (if tests (not (find "failed" tests :key #'second :test #'string=)) ok)))
    (dolist (frame *frames*) (incf (frame-suites frame)))
    (unless (or ok *failed*) (setf *failed* framework))
    (write-record :suite (princ-to-string suite) :framework framework
                  :system (and *frames* (frame-system (first *frames*)))
                  :ok (if ok t :false)
                  :tests (array-of
                          (mapcar (lambda (test)
                                    (destructuring-bind (name status &optional message) test
                                      (list :obj :name (princ-to-string name) :status status
                                                 :message (and message
                                                               (ignore-errors
                                                                (princ-to-string message))))))
                                  tests)))))

(defun internal (package name)
  "The value of PACKAGE::NAME if it is a variable, its function if a function, else NIL."
  (let ((symbol (find-symbol name package)))
    (cond ((null symbol) nil)
          ((boundp symbol) (symbol-value symbol))
          ((fboundp symbol) (fdefinition symbol)))))

(defun call-internal (package name &rest args)
  (apply (internal package name) args))

(defun name-or (default package name object)
  "PACKAGE::NAME of OBJECT, if that is a function that applies to it, else DEFAULT."
  (let ((name (ignore-errors (call-internal package name object))))
    (if (or (null name) (equal name "")) default name)))

(defun class-named-p (object package name)
  (let ((symbol (find-symbol name package)))
    (and symbol (find-class symbol nil) (typep object symbol))))

;;; The frameworks: each reads a suite from the arguments and the value of its outermost call.

(defun fiveam-suite (args results)
  "fiveam's RUN returns a result per check: group them by test."
  (let ((tests '()))
    (dolist (r results)
      (let* ((name (call-internal "IT.BESE.FIVEAM" "NAME"
                                  (call-internal "IT.BESE.FIVEAM" "TEST-CASE" r)))
             (status (cond ((class-named-p r "IT.BESE.FIVEAM" "TEST-FAILURE") "failed")
                           ((class-named-p r "IT.BESE.FIVEAM" "TEST-SKIPPED") "skipped")
                           (t "passed")))
             (entry (assoc name tests :test #'equal)))
        (cond ((null entry)
               (push (list name status (and (string= status "failed")
                                            (call-internal "IT.BESE.FIVEAM" "REASON" r)))
                     tests))
              ((and (string= status "failed") (not (string= (second entry) "failed")))
               (setf (second entry) status
                     (third entry) (call-internal "IT.BESE.FIVEAM" "REASON" r))))))
    (end-suite "fiveam" (first args) (nreverse tests) :ok t)))

(defun rt-suite (package framework result)
  "rt's DO-TESTS leaves the failed tests pending; those on *EXPECTED-FAILURES* are expected."
  (let ((entries (rest (internal package "*ENTRIES*")))
        (pending (call-internal package "PENDING-TESTS"))
        (expected (internal package "*EXPECTED-FAILURES*"))
        (disabled (internal package "HAS-DISABLED-NOTE")))
    (end-suite framework framework
               (mapcar (lambda (entry)
                         (let ((name (call-internal package "NAME" entry)))
                           (list name
                                 (cond ((and disabled (funcall disabled entry)) "skipped")
                                       ((not (member name pending :test #'equal)) "passed")
                                       ((member name expected :test #'equal) "expected")
                                       (t "failed")))))
                       entries)
               :ok result)))

(defun xlunit-suite (args)
  "xlunit fills a TEST-RESULTS: a count of tests run, and the failures and errors. The tests
are named by walking the suite that ran; if that does not account for the count, the tests that
passed go unnamed."
  (let* ((results (second args))
         (bad (append (call-internal "XLUNIT" "FAILURES" results)
                      (call-internal "XLUNIT" "ERRORS" results)))
         (run (call-internal "XLUNIT" "RUN-TESTS" results))
         (cases (labels ((walk (x)
                           (if (class-named-p x "XLUNIT" "TEST-SUITE")
                               (mapcan #'walk (copy-list (call-internal "XLUNIT" "TESTS" x)))
                               (list x))))
                  (walk (first args))))
         (named (= (length cases) run)))
    (flet ((test (case)
             (let ((failure (find case bad :key (internal "XLUNIT" "FAILED-TEST"))))
               (list (name-or "" "XLUNIT" "NAME" case)
                     (if failure "failed" "passed")
                     (and failure (call-internal "XLUNIT" "THROWN-CONDITION" failure))))))
      (end-suite "xlunit" (or (name-or nil "XLUNIT" "TEST-SUITE-NAME" (first args))
                              (name-or "xlunit" "XLUNIT" "NAME" (first args)))
                 (if named
                     (mapcar #'test cases)
                     (append (mapcar (lambda (f) (test (call-internal "XLUNIT" "FAILED-TEST" f)))
                                     bad)
                             (loop :repeat (- run (length bad)) :collect (list "" "passed"))))))))

(defun xptest-suite (results)
  "xptest's RUN-TEST returns a TEST-RESULT per test, in lists as deep as the suites nest."
  (let ((flat '()))
    (labels ((walk (x) (if (listp x) (mapc #'walk x) (push x flat))))
      (walk results))
    (end-suite "xptest" "xptest"
               (mapcar (lambda (r)
                         (let ((bad (or (call-internal "XPTEST" "TEST-FAILURES" r)
                                        (call-internal "XPTEST" "TEST-ERRORS" r))))
                           (list (call-internal "XPTEST" "TEST-NAME"
                                                (call-internal "XPTEST" "RESULT-TEST" r))
                                 (if bad "failed" "passed")
                                 (first bad))))
                       (nreverse flat)))))

(defun fiasco-suite ()
  "fiasco leaves the run's context in *LAST-TEST-RESULT*: a tree of test runs."
  (let ((top (internal "FIASCO" "*LAST-TEST-RESULT*")))
    (end-suite "fiasco" (call-internal "FIASCO" "NAME-OF" (call-internal "FIASCO" "TEST-OF" top))
               (mapcar (lambda (run)
                         (let ((failures (slot-value run (find-symbol "SELF-FAILURES" "FIASCO"))))
                           (list (call-internal "FIASCO" "NAME-OF"
                                                (call-internal "FIASCO" "TEST-OF" run))
                                 (cond ((notevery (internal "FIASCO" "EXPECTED-P") failures)
                                        "failed")
                                       (failures "expected")
                                       ((call-internal "FIASCO" "SKIPPED-P" run) "skipped")
                                       (t "passed"))
                                 (first failures))))
                       (rest (call-internal "FIASCO" "ALL-TEST-RUNS-OF" top))))))

(defun ptester-suite ()
  "ptester's WITH-TESTS is a macro: its counters are read when it asks GC-PRINT-STATE, at its
end. A known failure counts among its errors, but not among its unexpected failures."
  (let* ((errors (internal "PTESTER" "*TEST-ERRORS*"))
         (unexpected (internal "PTESTER" "*TEST-UNEXPECTED-FAILURES*"))
         (passed (internal "PTESTER" "*TEST-SUCCESSES*")))
    (end-suite "ptester" "with-tests"
               (append (loop :repeat passed :collect (list "" "passed"))
                       (loop :repeat unexpected :collect (list "" "failed"))
                       (loop :repeat (- errors unexpected) :collect (list "" "expected"))))))

;;; (package function reader): READER makes the suite from the outermost call's arguments and
;;; value; with :before, from the arguments before the call, when it reads the framework's state.
(defparameter *frameworks*
  `(("IT.BESE.FIVEAM" "RUN" ,#'fiveam-suite)
    ("XLUNIT" "RUN-ON-TEST-RESULTS" ,(lambda (args result) (declare (ignore result))
                                       (xlunit-suite args)))
    ("XPTEST" "RUN-TEST" ,(lambda (args result) (declare (ignore args)) (xptest-suite result)))
    ("FIASCO" "RUN-SUITE-TESTS" ,(lambda (args result) (declare (ignore args result))
                                   (fiasco-suite)))
    ("PTESTER" "GC-PRINT-STATE" :before ,(lambda (args) (declare (ignore args))
                                           (ptester-suite)))))

;;; Runners of their own that say, by what they return, whether all their tests passed
;;; (Edi Weitz's: "returns a true value iff all tests succeeded").
(defparameter *boolean-runners*
  '(("CL-PPCRE-TEST" "RUN-ALL-TESTS") ("CL-INTERPOL-TEST" "RUN-ALL-TESTS")
    ("CL-UNICODE-TEST" "RUN-ALL-TESTS") ("FLEXI-STREAMS-TEST" "RUN-ALL-TESTS")))

(defun rt-packages ()
  "The packages that hold rt, or a copy of it (SBCL's sb-rt; test suites that carry their own):
DO-TESTS, PENDING-TESTS and *ENTRIES* of their own."
  (loop :for package :in (list-all-packages)
        :for name := (package-name package)
        :when (every (lambda (symbol-name)
                       (multiple-value-bind (symbol status) (find-symbol symbol-name package)
                         (and symbol (member status '(:internal :external))
                              (or (fboundp symbol) (boundp symbol)))))
                     '("DO-TESTS" "PENDING-TESTS" "*ENTRIES*"))
          :collect name))

(defun frameworks ()
  "Every framework entry point to watch, with its reader: the known ones, the boolean runners,
and rt wherever a copy of it is loaded."
  (append *frameworks*
          (mapcar (lambda (runner)
                    (destructuring-bind (package name) runner
                      (list package name
                            (lambda (args result) (declare (ignore args))
                              (end-suite (string-downcase package) name '() :ok result)))))
                  *boolean-runners*)
          (mapcar (lambda (package)
                    (list package "DO-TESTS"
                          (lambda (args result) (declare (ignore args))
                            (let ((framework (if (string= package "REGRESSION-TEST")
                                                 "rt"
                                                 (string-downcase package))))
                              (rt-suite package framework result)))))
                  (rt-packages))))

(defun read-suite (framework reader &rest args)
  "Call READER; if this framework's version keeps its state elsewhere, its suite is unknown."
  (handler-case (apply reader args)
    (error (e)
      (dolist (frame *frames*) (incf (frame-suites frame)))
      (write-record :unknown (and *frames* (frame-system (first *frames*)))
                    :framework framework
                    :reason (or (ignore-errors (princ-to-string e)) "unreadable")))))

(defun watch-frameworks ()
  (dolist (entry (frameworks))
    (destructuring-bind (package name &rest how) entry
      (let ((symbol (and (find-package package) (find-symbol name package)))
            (before (eq (first how) :before))
            (reader (car (last how))))
        (when symbol
          (plait-sbcl:wrap-function symbol 'plait-suite
            (lambda (f &rest args)
              (if before
                  (progn (read-suite package reader args) (apply f args))
                  (let ((result (let ((*depth* (1+ *depth*))) (apply f args))))
                    ;; A framework's own tests run it inside a run: only the outermost ends.
                    (when (zerop *depth*) (read-suite package reader args result))
                    result)))))))))

(defun watch-performs ()
  "Watch the frameworks that load during the run, too, and each test-op of the user's: one
that ran no suite, and performed no other test-op that did, ran an unknown one."
  (plait-sbcl:wrap-function 'asdf:perform 'plait-watch-performs
    (lambda (f o c)
      (if (and (typep o 'asdf:test-op) (plait-dump::user-perform-p o c))
          (let ((frame (make-frame :system (asdf:component-name c))))
            (when *frames* (incf (frame-children (first *frames*))))
            (multiple-value-prog1 (let ((*frames* (cons frame *frames*))) (funcall f o c))
              (when (and (zerop (frame-suites frame)) (zerop (frame-children frame)))
                (write-record :unknown (frame-system frame)))))
          (multiple-value-prog1 (funcall f o c)
            (when (typep o 'asdf:load-op) (watch-frameworks)))))))

(defun main (tokens)
  (let ((file (sb-ext:posix-getenv "PLAIT_TEST_RECORD")))
    (setf *record* (and file (open file :direction :output :if-exists :append
                                        :if-does-not-exist :create :external-format :utf-8))))
  (watch-frameworks)
  (watch-performs)
  (handler-bind ((warning (lambda (w) (when (bookkeeping-p w) (muffle-warning w))))
                 (error (lambda (e)
                          (let ((said (or (ignore-errors (princ-to-string e))
                                          (format nil "an error of type ~s" (type-of e)))))
                            (write-record :error said
                                          :system (and *frames*
                                                       (frame-system (first *frames*))))
                            (format t "~&~%plait: the tests signalled an error: ~a~%" said))
                          (fresh-line)
                          (finish-output)
                          (sb-ext:exit :code 1 :abort t))))
    (dolist (token tokens)
      (multiple-value-bind (o c) (action-of token)
        (asdf:perform o c))))
  (fresh-line)
  (finish-output)
  (when *failed*
    (format t "~&~%plait: ~a reported failures~%" *failed*)
    (finish-output)
    (sb-ext:exit :code 1 :abort t)))
