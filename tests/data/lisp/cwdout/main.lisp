(defparameter cl-user::*plait-cwdout*
  #.(uiop:read-file-string (merge-pathnames "thing.out" *default-pathname-defaults*)))
