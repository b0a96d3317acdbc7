(in-package :wordcount)

(defun words (text)
  "The words of TEXT, in lower case: runs of letters, digits and apostrophes."
  (mapcar #'string-downcase (cl-ppcre:all-matches-as-strings "[\\w']+" text)))

(defun frequencies (words)
  "An alist (word . count), most frequent first, ties in alphabetical order."
  (let ((counts (make-hash-table :test 'equal)))
    (dolist (w words)
      (incf (gethash w counts 0)))
    (sort (alexandria:hash-table-alist counts)
          (lambda (a b)
            (or (> (cdr a) (cdr b))
                (and (= (cdr a) (cdr b)) (string< (car a) (car b))))))))
