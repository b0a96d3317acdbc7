(defpackage :wordcount/tests
  (:use :cl :fiveam :wordcount))
(in-package :wordcount/tests)

(def-suite :wordcount)
(in-suite :wordcount)

(test words-are-lower-case-runs-of-letters
  (is (equal '("the" "cat's" "hat" "2") (words "The cat's HAT, 2!"))))

(test most-frequent-first-then-alphabetical
  (is (equal '(("a" . 2) ("b" . 2) ("c" . 1))
             (frequencies (words "b a c a b")))))
