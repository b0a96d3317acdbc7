(defpackage :plait-erroring (:use :cl) (:export #:run))
(in-package :plait-erroring)

(defun run () (error "the test harness broke"))
