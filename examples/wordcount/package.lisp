(defpackage :wordcount
  (:use :cl)
  (:export #:words #:frequencies #:main))
