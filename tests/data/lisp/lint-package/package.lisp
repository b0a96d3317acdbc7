(defpackage :lint-package (:use :cl) (:export #:answer))
