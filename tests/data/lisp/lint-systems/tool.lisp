(defpackage :lint-tool (:use :cl) (:export #:tool))
(in-package :lint-tool)

(defun tool (x) (lint-base:twice x))
