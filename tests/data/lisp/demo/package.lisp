(defpackage :plait-demo (:use :cl) (:export #:greeting #:main #:shout))
