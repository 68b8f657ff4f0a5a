int counter = 0;
void tick() {
    // counter += 1;
    // log("counted");
    counter += 1;
    log("counted"); /* after */
    a(log("counted");, log("counted"););
}
void tock() {
    step(1);
    step(2);
    
    step(3);, step(4);
}
std::cout << "shift operators with spaces are left alone" << std::endl;
int x = 1 << 4;
<<log-it>>

<<left-alone>>

log("counted");
