(defpackage :plait-dsd-helper (:use :cl) (:export #:*inside-hook* #:call-inside-hook))
(in-package :plait-dsd-helper)

(defvar *inside-hook* nil)

(defun call-inside-hook (thunk)
  (let ((*inside-hook* t))
    (funcall thunk)))
