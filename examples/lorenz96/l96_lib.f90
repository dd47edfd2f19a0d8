!> Shared support for the Lorenz-96 example programs (l96_truth, l96_model):
!>
!>   l96_kinds  real kind and physical/time-unit constants
!>   l96_args   key=value command-line parsing
!>   l96_ring   block decomposition of a periodic ring over MPI ranks, halo
!>              exchange with MPI_Sendrecv, gather of output blocks
!>   l96_ncio   CF netCDF writer (buffered, gather to rank 0, written under a
!>              temporary name and renamed on close) and readers for X(time,k)
!>
!> No routine here stops the program: each returns stat /= 0 and an errmsg
!> that names the file or argument at fault; the programs decide what to do.

module l96_kinds
   use, intrinsic :: iso_fortran_env, only: real64, int64
   implicit none
   private
   public :: dp, i8, days_per_mtu, seconds_per_mtu, time_units, time_calendar, msg_len, fmt

   integer, parameter :: dp = real64
   integer, parameter :: i8 = int64
   integer, parameter :: msg_len = 1024
   !> Time-unit convention: 1 model time unit (MTU) = 5 days (Lorenz 1996).
   real(dp), parameter :: days_per_mtu = 5.0_dp
   real(dp), parameter :: seconds_per_mtu = 432000.0_dp
   character(len=*), parameter :: time_units = "days since 2000-01-01 00:00:00"
   character(len=*), parameter :: time_calendar = "proleptic_gregorian"

contains

   !> A real as text for messages, with a leading zero ("0.5000", not ".5000").
   function fmt(v, digits) result(s)
      real(dp), intent(in) :: v
      integer, intent(in), optional :: digits
      character(len=:), allocatable :: s
      character(len=40) :: b
      character(len=16) :: f
      integer :: d
      d = 4
      if (present(digits)) d = digits
      if (abs(v) >= 1.0e12_dp .or. (abs(v) < 1.0e-3_dp .and. v /= 0.0_dp)) then
         write (b, '(es14.6)') v
      else
         write (f, '(a,i0,a)') "(f30.", d, ")"
         write (b, f) v
      end if
      s = trim(adjustl(b))
   end function fmt
end module l96_kinds

!-----------------------------------------------------------------------------

module l96_args
   use l96_kinds, only: dp, msg_len
   implicit none
   private
   public :: args_t, args_load, args_get_real, args_get_int, args_get_str, &
             args_get_flag, args_unused, args_wants_help, args_cmdline, args_has

   integer, parameter :: arg_len = 4096

   type :: args_t
      character(len=arg_len), allocatable :: key(:), val(:)
      logical, allocatable :: used(:)
      logical :: help = .false.
      character(len=:), allocatable :: cmdline
   end type args_t

contains

   !> Read all command-line arguments. Each must be key=value, except
   !> -h/--help/help. stat /= 0 names a malformed argument.
   subroutine args_load(a, stat, errmsg)
      type(args_t), intent(out) :: a
      integer, intent(out) :: stat
      character(len=*), intent(out) :: errmsg
      integer :: n, i, p, length
      character(len=arg_len) :: s
      character(len=arg_len) :: prog

      stat = 0
      errmsg = ""
      n = command_argument_count()
      allocate (a%key(n), a%val(n), a%used(n))
      a%used = .false.
      call get_command_argument(0, prog)
      a%cmdline = trim(prog)
      do i = 1, n
         call get_command_argument(i, s, length)
         if (length > arg_len) then
            stat = 1
            write (errmsg, '(a,i0,a)') "command-line argument ", i, " is too long"
            return
         end if
         a%cmdline = a%cmdline//" "//trim(s)
         a%key(i) = ""
         a%val(i) = ""
         if (s == "-h" .or. s == "--help" .or. s == "help" .or. s == "-help") then
            a%help = .true.
            a%used(i) = .true.
            cycle
         end if
         p = index(s, "=")
         if (p <= 1) then
            stat = 1
            errmsg = "argument '"//trim(s)//"' is not of the form key=value (try --help)"
            return
         end if
         a%key(i) = adjustl(s(1:p - 1))
         a%val(i) = adjustl(s(p + 1:))
      end do
   end subroutine args_load

   logical function args_wants_help(a)
      type(args_t), intent(in) :: a
      args_wants_help = a%help
   end function args_wants_help

   !> Whether key=... was given.
   logical function args_has(a, key)
      type(args_t), intent(in) :: a
      character(len=*), intent(in) :: key
      integer :: i
      args_has = .false.
      do i = 1, size(a%key)
         if (trim(a%key(i)) == key) args_has = .true.
      end do
   end function args_has

   function args_cmdline(a) result(s)
      type(args_t), intent(in) :: a
      character(len=:), allocatable :: s
      s = a%cmdline
   end function args_cmdline

   integer function find_key(a, key)
      type(args_t), intent(inout) :: a
      character(len=*), intent(in) :: key
      integer :: i
      find_key = 0
      do i = size(a%key), 1, -1   ! the last occurrence wins
         if (trim(a%key(i)) == key) then
            if (find_key == 0) find_key = i
            a%used(i) = .true.
         end if
      end do
   end function find_key

   subroutine args_get_str(a, key, val, default, found)
      type(args_t), intent(inout) :: a
      character(len=*), intent(in) :: key
      character(len=:), allocatable, intent(out) :: val
      character(len=*), intent(in) :: default
      logical, intent(out), optional :: found
      integer :: i
      i = find_key(a, key)
      if (i > 0) then
         val = trim(a%val(i))
      else
         val = default
      end if
      if (present(found)) found = i > 0
   end subroutine args_get_str

   subroutine args_get_real(a, key, val, default, stat, errmsg)
      type(args_t), intent(inout) :: a
      character(len=*), intent(in) :: key
      real(dp), intent(out) :: val
      real(dp), intent(in) :: default
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i, ios
      val = default
      i = find_key(a, key)
      if (i == 0) return
      read (a%val(i), *, iostat=ios) val
      if (ios /= 0 .or. len_trim(a%val(i)) == 0) then
         if (stat == 0) errmsg = "argument "//key//"="//trim(a%val(i))//" is not a real number"
         stat = 1
      end if
   end subroutine args_get_real

   subroutine args_get_int(a, key, val, default, stat, errmsg)
      type(args_t), intent(inout) :: a
      character(len=*), intent(in) :: key
      integer, intent(out) :: val
      integer, intent(in) :: default
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i, ios
      val = default
      i = find_key(a, key)
      if (i == 0) return
      ios = 1
      if (len_trim(a%val(i)) > 0 .and. verify(trim(a%val(i)), "+-0123456789") == 0) &
         read (a%val(i), *, iostat=ios) val
      if (ios /= 0) then
         if (stat == 0) errmsg = "argument "//key//"="//trim(a%val(i))//" is not an integer"
         stat = 1
      end if
   end subroutine args_get_int

   subroutine args_get_flag(a, key, val, default, stat, errmsg)
      type(args_t), intent(inout) :: a
      character(len=*), intent(in) :: key
      logical, intent(out) :: val
      logical, intent(in) :: default
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i
      val = default
      i = find_key(a, key)
      if (i == 0) return
      select case (trim(a%val(i)))
      case ("1", "yes", "true", "on", "True", "TRUE", ".true.")
         val = .true.
      case ("0", "no", "false", "off", "False", "FALSE", ".false.")
         val = .false.
      case default
         if (stat == 0) errmsg = "argument "//key//"="//trim(a%val(i))//" is not a flag (use 0 or 1)"
         stat = 1
      end select
   end subroutine args_get_flag

   !> stat /= 0 if an argument was given that no args_get_* asked for.
   subroutine args_unused(a, stat, errmsg)
      type(args_t), intent(in) :: a
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i
      do i = 1, size(a%key)
         if (.not. a%used(i)) then
            if (stat == 0) errmsg = "unknown argument '"//trim(a%key(i))//"' (try --help)"
            stat = 1
            return
         end if
      end do
   end subroutine args_unused

end module l96_args

!-----------------------------------------------------------------------------

module l96_ring
   use mpi_f08
   use l96_kinds, only: dp, msg_len
   implicit none
   private
   public :: ring_t, ring_init, ring_exchange, ring_gather

   !> Contiguous block decomposition of a periodic ring of ktot sites.
   !> Rank r owns global sites koff+1 .. koff+nloc (koff 0-based); the first
   !> mod(ktot, nprocs) ranks own one site more than the others.
   type :: ring_t
      type(MPI_Comm) :: comm
      integer :: rank = 0, nprocs = 1, left = 0, right = 0
      integer :: ktot = 0, nloc = 0, koff = 0
      integer, allocatable :: counts(:), offsets(:)   ! per rank, in sites
   end type ring_t

contains

   subroutine ring_init(ring, comm, ktot, min_local, stat, errmsg)
      type(ring_t), intent(out) :: ring
      type(MPI_Comm), intent(in) :: comm
      integer, intent(in) :: ktot, min_local
      integer, intent(out) :: stat
      character(len=*), intent(out) :: errmsg
      integer :: r, base, rem

      stat = 0
      errmsg = ""
      ring%comm = comm
      call MPI_Comm_rank(comm, ring%rank)
      call MPI_Comm_size(comm, ring%nprocs)
      ring%ktot = ktot
      ring%left = modulo(ring%rank - 1, ring%nprocs)
      ring%right = modulo(ring%rank + 1, ring%nprocs)
      if (ktot < min_local*ring%nprocs) then
         stat = 1
         write (errmsg, '(a,i0,a,i0,a,i0,a)') "K=", ktot, " is too small for ", ring%nprocs, &
            " ranks: each rank needs at least ", min_local, " sites (use fewer ranks or a larger K)"
         return
      end if
      allocate (ring%counts(0:ring%nprocs - 1), ring%offsets(0:ring%nprocs - 1))
      base = ktot/ring%nprocs
      rem = modulo(ktot, ring%nprocs)
      do r = 0, ring%nprocs - 1
         ring%counts(r) = base + merge(1, 0, r < rem)
         ring%offsets(r) = r*base + min(r, rem)
      end do
      ring%nloc = ring%counts(ring%rank)
      ring%koff = ring%offsets(ring%rank)
   end subroutine ring_init

   !> Periodic halo exchange: to_right goes to the right neighbour, which
   !> receives it in its from_left; to_left goes to the left neighbour, which
   !> receives it in its from_right. On one rank this is a copy.
   subroutine ring_exchange(ring, to_left, to_right, from_left, from_right)
      type(ring_t), intent(in) :: ring
      real(dp), intent(in) :: to_left(:), to_right(:)
      real(dp), intent(out) :: from_left(:), from_right(:)

      if (ring%nprocs == 1) then
         from_left = to_right
         from_right = to_left
         return
      end if
      call MPI_Sendrecv(to_right, size(to_right), MPI_DOUBLE_PRECISION, ring%right, 101, &
                        from_left, size(from_left), MPI_DOUBLE_PRECISION, ring%left, 101, &
                        ring%comm, MPI_STATUS_IGNORE)
      call MPI_Sendrecv(to_left, size(to_left), MPI_DOUBLE_PRECISION, ring%left, 102, &
                        from_right, size(from_right), MPI_DOUBLE_PRECISION, ring%right, 102, &
                        ring%comm, MPI_STATUS_IGNORE)
   end subroutine ring_exchange

   !> Gather nrec records of a field with m values per site, local(m*nloc, nrec)
   !> on every rank, into global(m*ktot, nrec) on rank 0 (site order).
   !> work must hold m*ktot*nrec values on rank 0 (ignored elsewhere).
   subroutine ring_gather(ring, m, nrec, local, global, work)
      type(ring_t), intent(in) :: ring
      integer, intent(in) :: m, nrec
      real(dp), intent(in) :: local(:, :)
      real(dp), intent(inout) :: global(:, :)
      real(dp), intent(inout) :: work(:)
      integer :: r, n, p, i
      integer, allocatable :: cnt(:), dsp(:)

      if (ring%nprocs == 1) then
         global(:, 1:nrec) = local(1:m*ring%nloc, 1:nrec)
         return
      end if
      allocate (cnt(0:ring%nprocs - 1), dsp(0:ring%nprocs - 1))
      cnt = m*ring%counts*nrec
      dsp(0) = 0
      do r = 1, ring%nprocs - 1
         dsp(r) = dsp(r - 1) + cnt(r - 1)
      end do
      ! local(:, 1:nrec) with a first extent of m*nloc is contiguous
      call MPI_Gatherv(local(:, 1:nrec), m*ring%nloc*nrec, MPI_DOUBLE_PRECISION, work, cnt, dsp, &
                       MPI_DOUBLE_PRECISION, 0, ring%comm)
      if (ring%rank /= 0) return
      do r = 0, ring%nprocs - 1
         n = m*ring%counts(r)
         p = dsp(r)
         do i = 1, nrec
            global(m*ring%offsets(r) + 1:m*ring%offsets(r) + n, i) = work(p + 1:p + n)
            p = p + n
         end do
      end do
   end subroutine ring_gather

end module l96_ring

!-----------------------------------------------------------------------------

module l96_ncio
   use netcdf
   use mpi_f08
   use l96_kinds
   use l96_ring, only: ring_t, ring_gather
   implicit none
   private
   public :: ncw_t, ncw_create, ncw_att, ncw_def_field, ncw_enddef, ncw_stage, ncw_commit, &
             ncw_close, ncr_t, ncr_open, ncr_read, ncr_close, nc_fill, &
             series_t, series_open, series_record, series_at, series_close

   real(dp), parameter :: nc_fill = nf90_fill_double
   integer, parameter :: max_fields = 8

   type :: field_t
      character(len=64) :: name = ""
      integer :: m = 1            ! values per site (1 for X, J for Y)
      integer :: varid = -1
      real(dp), allocatable :: buf(:, :)   ! (m*nloc, nbuf), every rank
      real(dp), allocatable :: glob(:, :)  ! (m*ktot, nbuf), rank 0
   end type field_t

   !> Buffered writer for variables shaped (time, k) or (time, k, j) in netCDF
   !> (Fortran order (k, time) and (j, k, time)). Collective: every rank calls
   !> every routine; only rank 0 touches the file.
   type, public :: ncw_t
      type(ring_t) :: ring
      character(len=:), allocatable :: path, tmp_path
      integer :: ncid = -1, time_varid = -1, kdim = -1, tdim = -1, jdim = -1
      integer :: kvarid = -1, jvarid = -1
      integer :: nj = 0
      integer :: nbuf = 0, nfill = 0, nwritten = 0
      integer :: nfields = 0
      type(field_t) :: f(max_fields)
      real(dp), allocatable :: tbuf(:)
      real(dp), allocatable :: work(:)
      logical :: root = .false.
   end type ncw_t

   !> Reader of X-like variables (time, k) from a file written here (or any
   !> file with dims time and k, time in days since 2000-01-01).
   type :: ncr_t
      character(len=:), allocatable :: path
      integer :: ncid = -1, ntime = 0, ktot = 0
      real(dp), allocatable :: time_mtu(:)
   end type ncr_t

   type :: series_t
      type(ncr_t) :: r
      character(len=64) :: name = ""
      integer :: koff = 0, nloc = 0, nwin = 0, i0 = 0, cursor = 1
      real(dp), allocatable :: buf(:, :)
   end type series_t

   interface ncw_att
      module procedure att_text, att_real, att_int
   end interface ncw_att

contains

   subroutine nc_err(status, path, what, stat, errmsg)
      integer, intent(in) :: status
      character(len=*), intent(in) :: path, what
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      if (status /= nf90_noerr .and. stat == 0) then
         stat = status
         errmsg = "netCDF error on '"//path//"' ("//what//"): "//trim(nf90_strerror(status))
      end if
   end subroutine nc_err

   !> Broadcast rank 0's stat/errmsg so that every rank fails together.
   subroutine share_stat(ring, stat, errmsg)
      type(ring_t), intent(in) :: ring
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      character(len=msg_len) :: m
      if (ring%nprocs == 1) return
      call MPI_Bcast(stat, 1, MPI_INTEGER, 0, ring%comm)
      if (stat /= 0) then
         m = errmsg
         call MPI_Bcast(m, msg_len, MPI_CHARACTER, 0, ring%comm)
         errmsg = m
      end if
   end subroutine share_stat

   !> Create path//".tmp" (renamed to path by ncw_close), define dims time
   !> (unlimited), k (and j when nj > 0), coordinates and time metadata.
   subroutine ncw_create(w, ring, path, nj, nbuf, stat, errmsg)
      type(ncw_t), intent(out) :: w
      type(ring_t), intent(in) :: ring
      character(len=*), intent(in) :: path
      integer, intent(in) :: nj, nbuf
      integer, intent(out) :: stat
      character(len=*), intent(out) :: errmsg
      integer :: kvar, jvar

      stat = 0
      errmsg = ""
      w%ring = ring
      w%path = path
      w%tmp_path = path//".tmp"
      w%nj = nj
      w%nbuf = nbuf
      w%root = ring%rank == 0
      allocate (w%tbuf(nbuf))
      if (w%root) then
         call nc_err(nf90_create(w%tmp_path, ior(nf90_clobber, nf90_netcdf4), w%ncid), &
                     w%tmp_path, "create", stat, errmsg)
         if (stat == 0) then
            call nc_err(nf90_def_dim(w%ncid, "time", nf90_unlimited, w%tdim), w%tmp_path, "def_dim time", stat, errmsg)
            call nc_err(nf90_def_dim(w%ncid, "k", ring%ktot, w%kdim), w%tmp_path, "def_dim k", stat, errmsg)
            if (nj > 0) call nc_err(nf90_def_dim(w%ncid, "j", nj, w%jdim), w%tmp_path, "def_dim j", stat, errmsg)
            call nc_err(nf90_def_var(w%ncid, "time", nf90_double, [w%tdim], w%time_varid, &
                                     chunksizes=[nbuf]), w%tmp_path, "def_var time", stat, errmsg)
            call put_att(w%time_varid, "standard_name", "time")
            call put_att(w%time_varid, "long_name", "time (1 model time unit = 5 days)")
            call put_att(w%time_varid, "units", time_units)
            call put_att(w%time_varid, "calendar", time_calendar)
            call put_att(w%time_varid, "axis", "T")
            call nc_err(nf90_def_var(w%ncid, "k", nf90_int, [w%kdim], kvar), w%tmp_path, "def_var k", stat, errmsg)
            call put_att(kvar, "long_name", "index of the slow variable on the ring (1-based)")
            call put_att(kvar, "units", "1")
            call put_att(kvar, "axis", "X")
            if (nj > 0) then
               call nc_err(nf90_def_var(w%ncid, "j", nf90_int, [w%jdim], jvar), w%tmp_path, "def_var j", stat, errmsg)
               call put_att(jvar, "long_name", "index of the fast variable within its slow sector (1-based)")
               call put_att(jvar, "units", "1")
            end if
            call nc_err(nf90_put_att(w%ncid, nf90_global, "Conventions", "CF-1.8"), w%tmp_path, "put_att", stat, errmsg)
            call nc_err(nf90_put_att(w%ncid, nf90_global, "time_unit_convention", &
                                     "1 model time unit (MTU) = 5 days = 432000 s; time 0 = 2000-01-01 00:00:00"), &
                        w%tmp_path, "put_att", stat, errmsg)
            call nc_err(nf90_put_att(w%ncid, nf90_global, "days_per_mtu", days_per_mtu), w%tmp_path, "put_att", stat, errmsg)
            w%kvarid = kvar
            if (nj > 0) w%jvarid = jvar
         end if
      end if
      call share_stat(ring, stat, errmsg)
   contains
      subroutine put_att(varid, name, val)
         integer, intent(in) :: varid
         character(len=*), intent(in) :: name, val
         call nc_err(nf90_put_att(w%ncid, varid, name, val), w%tmp_path, "put_att "//name, stat, errmsg)
      end subroutine put_att
   end subroutine ncw_create

   subroutine att_text(w, name, val, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      character(len=*), intent(in) :: name, val
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      if (w%root) call nc_err(nf90_put_att(w%ncid, nf90_global, name, val), w%tmp_path, "put_att "//name, stat, errmsg)
   end subroutine att_text

   subroutine att_real(w, name, val, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      character(len=*), intent(in) :: name
      real(dp), intent(in) :: val
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      if (w%root) call nc_err(nf90_put_att(w%ncid, nf90_global, name, val), w%tmp_path, "put_att "//name, stat, errmsg)
   end subroutine att_real

   subroutine att_int(w, name, val, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      character(len=*), intent(in) :: name
      integer, intent(in) :: val
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      if (w%root) call nc_err(nf90_put_att(w%ncid, nf90_global, name, val), w%tmp_path, "put_att "//name, stat, errmsg)
   end subroutine att_int

   !> Define a float64 field (time, k) (m == 1) or (time, k, j) (m == nj).
   !> Returns its handle ifield for ncw_stage. Fields are filled with
   !> _FillValue where never staged.
   subroutine ncw_def_field(w, name, long_name, units, m, ifield, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      character(len=*), intent(in) :: name, long_name, units
      integer, intent(in) :: m
      integer, intent(out) :: ifield
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: varid
      integer, allocatable :: dims(:), chunks(:)

      ifield = -1
      if (stat /= 0) return
      if (w%nfields >= max_fields) then
         stat = 1
         errmsg = "too many output fields for "//w%path
         return
      end if
      if (m /= 1 .and. m /= w%nj) then
         stat = 1
         errmsg = "internal error: field "//name//" has a bad number of values per site"
         return
      end if
      w%nfields = w%nfields + 1
      ifield = w%nfields
      w%f(ifield)%name = name
      w%f(ifield)%m = m
      allocate (w%f(ifield)%buf(m*w%ring%nloc, w%nbuf))
      w%f(ifield)%buf = nc_fill
      if (.not. w%root) return
      allocate (w%f(ifield)%glob(m*w%ring%ktot, w%nbuf))
      if (m == 1) then
         dims = [w%kdim, w%tdim]
         chunks = [w%ring%ktot, w%nbuf]
      else
         dims = [w%jdim, w%kdim, w%tdim]
         chunks = [w%nj, w%ring%ktot, max(1, w%nbuf/w%nj)]
      end if
      call nc_err(nf90_def_var(w%ncid, name, nf90_double, dims, varid, chunksizes=chunks), &
                  w%tmp_path, "def_var "//name, stat, errmsg)
      if (stat /= 0) return
      w%f(ifield)%varid = varid
      call nc_err(nf90_def_var_fill(w%ncid, varid, 0, nc_fill), w%tmp_path, "def_var_fill "//name, stat, errmsg)
      call nc_err(nf90_put_att(w%ncid, varid, "long_name", long_name), w%tmp_path, "put_att", stat, errmsg)
      call nc_err(nf90_put_att(w%ncid, varid, "units", units), w%tmp_path, "put_att", stat, errmsg)
   end subroutine ncw_def_field

   subroutine ncw_enddef(w, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i
      if (w%root .and. stat == 0) then
         call nc_err(nf90_enddef(w%ncid), w%tmp_path, "enddef", stat, errmsg)
         call nc_err(nf90_put_var(w%ncid, w%kvarid, [(i, i=1, w%ring%ktot)]), w%tmp_path, "put_var k", stat, errmsg)
         if (w%nj > 0) call nc_err(nf90_put_var(w%ncid, w%jvarid, [(i, i=1, w%nj)]), &
                                   w%tmp_path, "put_var j", stat, errmsg)
      end if
      call share_stat(w%ring, stat, errmsg)
      if (w%root) allocate (w%work(maxval([(w%f(i)%m, i=1, w%nfields)])*w%ring%ktot*w%nbuf))
   end subroutine ncw_enddef

   !> Store this rank's values of field ifield for the record being assembled.
   subroutine ncw_stage(w, ifield, values)
      type(ncw_t), intent(inout) :: w
      integer, intent(in) :: ifield
      real(dp), intent(in) :: values(:)
      w%f(ifield)%buf(:, w%nfill + 1) = values
   end subroutine ncw_stage

   !> Close the record being assembled at model time t_mtu; write the buffer
   !> out when full.
   subroutine ncw_commit(w, t_mtu, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      real(dp), intent(in) :: t_mtu
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      w%nfill = w%nfill + 1
      w%tbuf(w%nfill) = t_mtu*days_per_mtu
      if (w%nfill == w%nbuf) call flush_buffer(w, stat, errmsg)
   end subroutine ncw_commit

   subroutine flush_buffer(w, stat, errmsg)
      type(ncw_t), intent(inout) :: w
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: i, n, m

      n = w%nfill
      if (n == 0) return
      do i = 1, w%nfields
         m = w%f(i)%m
         if (w%root) then
            call ring_gather(w%ring, m, n, w%f(i)%buf, w%f(i)%glob, w%work)
         else
            call ring_gather(w%ring, m, n, w%f(i)%buf, w%f(i)%buf, w%f(i)%buf(:, 1))
         end if
         if (w%root .and. stat == 0) then
            if (m == 1) then
               call nc_err(nf90_put_var(w%ncid, w%f(i)%varid, w%f(i)%glob(:, 1:n), &
                                        start=[1, w%nwritten + 1], count=[w%ring%ktot, n]), &
                           w%tmp_path, "put_var "//trim(w%f(i)%name), stat, errmsg)
            else
               call nc_err(nf90_put_var(w%ncid, w%f(i)%varid, w%f(i)%glob(:, 1:n), &
                                        start=[1, 1, w%nwritten + 1], count=[w%nj, w%ring%ktot, n]), &
                           w%tmp_path, "put_var "//trim(w%f(i)%name), stat, errmsg)
            end if
         end if
         w%f(i)%buf = nc_fill
      end do
      if (w%root .and. stat == 0) &
         call nc_err(nf90_put_var(w%ncid, w%time_varid, w%tbuf(1:n), start=[w%nwritten + 1], count=[n]), &
                     w%tmp_path, "put_var time", stat, errmsg)
      w%nwritten = w%nwritten + n
      w%nfill = 0
      call share_stat(w%ring, stat, errmsg)
   end subroutine flush_buffer

   !> Write what is buffered, close, and rename path.tmp -> path.
   !> With keep_tmp=.true. (a failed run) the file stays under its
   !> temporary name.
   subroutine ncw_close(w, stat, errmsg, keep_tmp)
      type(ncw_t), intent(inout) :: w
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      logical, intent(in), optional :: keep_tmp
      integer :: rc
      logical :: keep
      keep = .false.
      if (present(keep_tmp)) keep = keep_tmp

      call flush_buffer(w, stat, errmsg)
      if (w%root .and. w%ncid >= 0) then
         call nc_err(nf90_close(w%ncid), w%tmp_path, "close", stat, errmsg)
         w%ncid = -1
         if (stat == 0 .and. .not. keep) then
            rc = c_rename(w%tmp_path, w%path)
            if (rc /= 0) then
               stat = 1
               errmsg = "cannot rename '"//w%tmp_path//"' to '"//w%path//"'"
            end if
         end if
      end if
      call share_stat(w%ring, stat, errmsg)
   end subroutine ncw_close

   integer function c_rename(from, to)
      use, intrinsic :: iso_c_binding, only: c_char, c_int, c_null_char
      character(len=*), intent(in) :: from, to
      interface
         integer(c_int) function rename_c(a, b) bind(c, name="rename")
            import :: c_char, c_int
            character(kind=c_char), intent(in) :: a(*), b(*)
         end function rename_c
      end interface
      c_rename = int(rename_c(from//c_null_char, to//c_null_char))
   end function c_rename

   !--------------------------------------------------------------- reading

   !> Open a file with dims time and k and a time coordinate in
   !> "days since 2000-01-01 ..." (converted to MTU, 1 MTU = 5 days).
   !> Each rank opens the file itself (read-only).
   subroutine ncr_open(r, path, stat, errmsg)
      type(ncr_t), intent(out) :: r
      character(len=*), intent(in) :: path
      integer, intent(out) :: stat
      character(len=*), intent(out) :: errmsg
      integer :: dimid, varid
      character(len=256) :: units

      stat = 0
      errmsg = ""
      r%path = path
      call nc_err(nf90_open(path, nf90_nowrite, r%ncid), path, "open", stat, errmsg)
      if (stat /= 0) return
      call nc_err(nf90_inq_dimid(r%ncid, "time", dimid), path, "no dimension 'time'", stat, errmsg)
      if (stat == 0) call nc_err(nf90_inquire_dimension(r%ncid, dimid, len=r%ntime), path, "time", stat, errmsg)
      call nc_err(nf90_inq_dimid(r%ncid, "k", dimid), path, "no dimension 'k'", stat, errmsg)
      if (stat == 0) call nc_err(nf90_inquire_dimension(r%ncid, dimid, len=r%ktot), path, "k", stat, errmsg)
      call nc_err(nf90_inq_varid(r%ncid, "time", varid), path, "no variable 'time'", stat, errmsg)
      if (stat /= 0) return
      units = ""
      call nc_err(nf90_get_att(r%ncid, varid, "units", units), path, "attribute time:units", stat, errmsg)
      if (stat /= 0) return
      if (index(units, "days since 2000-01-01") /= 1) then
         stat = 1
         errmsg = "'"//path//"': time:units is '"//trim(units)//"', expected '"//time_units//"'"
         return
      end if
      allocate (r%time_mtu(r%ntime))
      if (r%ntime > 0) call nc_err(nf90_get_var(r%ncid, varid, r%time_mtu), path, "get_var time", stat, errmsg)
      r%time_mtu = r%time_mtu/days_per_mtu
   end subroutine ncr_open

   !> Read sites koff+1..koff+size(x,1) of variable name at time indices
   !> it0+1 .. it0+size(x,2) (it0 0-based) into x(site, time).
   subroutine ncr_read(r, name, koff, it0, x, stat, errmsg)
      type(ncr_t), intent(in) :: r
      character(len=*), intent(in) :: name
      integer, intent(in) :: koff, it0
      real(dp), intent(out) :: x(:, :)
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: varid
      character(len=32) :: s
      if (stat /= 0) return
      if (it0 < 0 .or. it0 + size(x, 2) > r%ntime) then
         stat = 1
         write (s, '(i0,a,i0)') it0, ":", it0 + size(x, 2)
         errmsg = "'"//r%path//"': time index range "//trim(s)//" is outside the file's time axis"
         return
      end if
      call nc_err(nf90_inq_varid(r%ncid, name, varid), r%path, "no variable '"//name//"'", stat, errmsg)
      if (stat /= 0) return
      call nc_err(nf90_get_var(r%ncid, varid, x, start=[koff + 1, it0 + 1], count=[size(x, 1), size(x, 2)]), &
                  r%path, "get_var "//name, stat, errmsg)
   end subroutine ncr_read

   subroutine ncr_close(r)
      type(ncr_t), intent(inout) :: r
      integer :: status
      if (r%ncid >= 0) status = nf90_close(r%ncid)
      r%ncid = -1
   end subroutine ncr_close

   !--------------------------------------------------------------- series

   !> Read this rank's sites of a (time, k) variable record by record or
   !> interpolated linearly in time, through a window of nwin records.
   subroutine series_open(s, path, name, koff, nloc, nwin, stat, errmsg)
      type(series_t), intent(out) :: s
      character(len=*), intent(in) :: path, name
      integer, intent(in) :: koff, nloc, nwin
      integer, intent(out) :: stat
      character(len=*), intent(out) :: errmsg
      integer :: varid
      call ncr_open(s%r, path, stat, errmsg)
      if (stat /= 0) return
      call nc_err(nf90_inq_varid(s%r%ncid, name, varid), path, "no variable '"//name//"'", stat, errmsg)
      if (stat /= 0) return
      s%name = name
      s%koff = koff
      s%nloc = nloc
      s%nwin = max(2, min(nwin, s%r%ntime))
      allocate (s%buf(nloc, s%nwin))
      s%i0 = -huge(1)
      s%cursor = 1
   end subroutine series_open

   !> Make records i and i+1 (1-based, i+1 clamped to ntime) available.
   subroutine series_load(s, i, stat, errmsg)
      type(series_t), intent(inout) :: s
      integer, intent(in) :: i
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      integer :: first, last
      last = min(i + 1, s%r%ntime)
      if (i >= s%i0 .and. last <= s%i0 + s%nwin - 1) return
      first = max(1, min(i, s%r%ntime - s%nwin + 1))
      call ncr_read(s%r, s%name, s%koff, first - 1, s%buf, stat, errmsg)
      s%i0 = first
   end subroutine series_load

   !> values = record i (1-based).
   subroutine series_record(s, i, values, stat, errmsg)
      type(series_t), intent(inout) :: s
      integer, intent(in) :: i
      real(dp), intent(out) :: values(:)
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      character(len=32) :: n
      if (stat /= 0) return
      if (i < 1 .or. i > s%r%ntime) then
         stat = 1
         write (n, '(i0)') i - 1
         errmsg = "'"//s%r%path//"': time index "//trim(n)//" (0-based) is outside the file"
         return
      end if
      call series_load(s, i, stat, errmsg)
      if (stat /= 0) return
      values = s%buf(:, i - s%i0 + 1)
   end subroutine series_record

   !> values = the variable at model time t_mtu, linear in time between the
   !> two samples around t_mtu (exactly a sample when t_mtu is one, to 1e-9 MTU).
   subroutine series_at(s, t_mtu, values, stat, errmsg)
      type(series_t), intent(inout) :: s
      real(dp), intent(in) :: t_mtu
      real(dp), intent(out) :: values(:)
      integer, intent(inout) :: stat
      character(len=*), intent(inout) :: errmsg
      real(dp), parameter :: eps = 1.0e-9_dp
      real(dp) :: w
      integer :: c, n
      if (stat /= 0) return
      n = s%r%ntime
      if (n < 1) then
         stat = 1
         errmsg = "'"//s%r%path//"' has no time records"
         return
      end if
      if (t_mtu < s%r%time_mtu(1) - eps .or. t_mtu > s%r%time_mtu(n) + eps) then
         stat = 1
         errmsg = "'"//s%r%path//"' does not cover model time "//fmt(t_mtu*days_per_mtu)// &
                  " days (it covers "//fmt(s%r%time_mtu(1)*days_per_mtu)//" to "// &
                  fmt(s%r%time_mtu(n)*days_per_mtu)//")"
         return
      end if
      c = min(max(s%cursor, 1), n)
      if (s%r%time_mtu(c) > t_mtu + eps) c = 1
      do while (c < n)
         if (s%r%time_mtu(c + 1) > t_mtu + eps) exit
         c = c + 1
      end do
      s%cursor = c
      if (c == n .or. abs(t_mtu - s%r%time_mtu(c)) <= eps) then
         call series_record(s, c, values, stat, errmsg)
         return
      end if
      w = (t_mtu - s%r%time_mtu(c))/(s%r%time_mtu(c + 1) - s%r%time_mtu(c))
      call series_load(s, c, stat, errmsg)
      if (stat /= 0) return
      values = (1.0_dp - w)*s%buf(:, c - s%i0 + 1) + w*s%buf(:, c - s%i0 + 2)
   end subroutine series_at

   subroutine series_close(s)
      type(series_t), intent(inout) :: s
      call ncr_close(s%r)
   end subroutine series_close

end module l96_ncio


! ==========================================================================
!> What both programs print when they stop: timestamps for the history
!> attribute, and a rank-tagged error that ends every rank.
module l96_report
   use mpi_f08
   implicit none
   private
   public :: timestamp, report_failure

contains

   function timestamp() result(s)
      character(len=:), allocatable :: s
      character(len=8) :: d
      character(len=10) :: t
      call date_and_time(d, t)
      s = d(1:4)//"-"//d(5:6)//"-"//d(7:8)//"T"//t(1:2)//":"//t(3:4)//":"//t(5:6)
   end function timestamp

   !> Print "<program> [rank R]: error: <message>" and end the run (exit code 2).
   subroutine report_failure(program_name, rank, nprocs, message)
      use, intrinsic :: iso_fortran_env, only: error_unit
      character(len=*), intent(in) :: program_name, message
      integer, intent(in) :: rank, nprocs
      write (error_unit, '(a,i0,a)') program_name//" [rank ", rank, "]: error: "//message
      flush (error_unit)
      if (nprocs > 1) call MPI_Abort(MPI_COMM_WORLD, 2)
      ! one rank: shut MPI down cleanly; a plain stop code avoids gfortran's
      ! error-stop backtrace, which would bury the message above
      call MPI_Finalize()
      stop 2
   end subroutine report_failure

end module l96_report
