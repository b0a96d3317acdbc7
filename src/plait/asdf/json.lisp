;;;; The one JSON writer of plait's Lisp drivers: the dump's graph, a compile's warnings.
;;;; Loaded first by the dump (it needs nothing of ASDF), so it is in the definitions core.
;;;;   t -> true   :false -> false   nil -> null   "s", #p"s" -> "s"   integers
;;;;   other symbols -> their lower-case names   (:obj key value ...) -> {"key": value, ...}
;;;;   a vector (not a string) or a non-empty list -> [...]: an empty list is NIL, so a field
;;;;   that is an array, empty or not, is given as a vector (ARRAY-OF).

(defpackage :plait-json (:use :cl) (:export #:write-json #:array-of))
(in-package :plait-json)

(defun array-of (list)
  "LIST as a JSON array, [] when empty."
  (coerce list 'simple-vector))

(defun write-string-literal (s stream)
  (write-char #\" stream)
  (loop :for c :across s
        :do (case c
              (#\" (write-string "\\\"" stream))
              (#\\ (write-string "\\\\" stream))
              (#\Newline (write-string "\\n" stream))
              (#\Tab (write-string "\\t" stream))
              (#\Return (write-string "\\r" stream))
              (t (if (< (char-code c) 32)
                     (format stream "\\u~4,'0x" (char-code c))
                     (write-char c stream)))))
  (write-char #\" stream))

(defun write-elements (elements stream)
  (write-char #\[ stream)
  (let ((first t))
    (map nil (lambda (e)
               (unless first (write-char #\, stream))
               (setf first nil)
               (write-json e stream))
         elements))
  (write-char #\] stream))

(defun write-json (x stream)
  (cond ((eq x t) (write-string "true" stream))
        ((eq x :false) (write-string "false" stream))
        ((null x) (write-string "null" stream))
        ((stringp x) (write-string-literal x stream))
        ((pathnamep x) (write-string-literal (namestring x) stream))
        ((integerp x) (format stream "~d" x))
        ((symbolp x) (write-string-literal (string-downcase (symbol-name x)) stream))
        ((and (consp x) (eq (first x) :obj))
         (write-char #\{ stream)
         (loop :for (k v) :on (rest x) :by #'cddr :for first = t :then nil
               :do (unless first (write-char #\, stream))
                   (write-string-literal (string-downcase (string k)) stream)
                   (write-char #\: stream)
                   (write-json v stream))
         (write-char #\} stream))
        ((or (vectorp x) (listp x)) (write-elements x stream))
        (t (write-string-literal (princ-to-string x) stream))))
