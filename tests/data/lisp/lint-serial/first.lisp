(defpackage :lint-serial (:use :cl))
(in-package :lint-serial)

(defvar *base* 40)
