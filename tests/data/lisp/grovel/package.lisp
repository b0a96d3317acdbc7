(defpackage :plait-grovel
  (:use :cl)
  (:export #:+eintr+ #:twice #:eintr-twice))
