(defpackage :lint-macro (:use :cl) (:export #:defconstant-once #:+answer+))
