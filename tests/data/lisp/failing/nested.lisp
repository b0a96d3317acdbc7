(defpackage :plait-nested (:use :cl :fiveam))
(in-package :plait-nested)

(def-suite :plait-nested)
(in-suite :plait-nested)

(test nested-arithmetic
  (is (= 4 (+ 2 2)))
  (is (= 5 (+ 2 2))))
