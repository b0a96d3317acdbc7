(defpackage :plait-demo-tests (:use :cl :fiveam))
(in-package :plait-demo-tests)

(def-suite :plait-demo)
(in-suite :plait-demo)

(test greeting
  (is (string= "hello, YOU: 0 1 2" (plait-demo:greeting "you"))))
