(in-package :plait-demo)

(defun greeting (who)
  (format nil "hello, ~a: ~{~a~^ ~}" (shout who) (alexandria:iota 3)))

(defun main ()
  (write-line (greeting (or (second sb-ext:*posix-argv*) "world")))
  0)
