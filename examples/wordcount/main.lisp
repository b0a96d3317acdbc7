(in-package :wordcount)

(defun main ()
  "Print each word of standard input with its count, most frequent first."
  (let ((text (alexandria:read-stream-content-into-string *standard-input*)))
    (loop :for (word . n) :in (frequencies (words text))
          :do (format t "~7d ~a~%" n word))))
