(defpackage :plait-truename (:use :cl) (:export #:*loaded-from* #:*compiled-seeing*))
(in-package :plait-truename)

(defvar *loaded-from* (directory-namestring *load-truename*))
