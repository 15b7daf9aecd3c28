/* chatserver agent console: the queue summary (`queue` frames) (see console.js). */
"use strict";
