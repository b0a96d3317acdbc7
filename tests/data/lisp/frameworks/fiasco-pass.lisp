(fiasco:define-test-package :plait-fw-fiasco-pass (:export #:run))
(in-package :plait-fw-fiasco-pass)
(deftest adds () (is (= 4 (+ 2 2))))
(defun run () (run-package-tests :package :plait-fw-fiasco-pass))
